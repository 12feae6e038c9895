"""The chat page in a real browser, by clicking: the seed's flow, a previewed three-step
workflow, failures, refusals, a hostile cell, saved workflows, cancel, rename and delete."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Offline
from tests.browser.pages import ChatPage, sheet_rows
from tests.support import POSTAL_ROWS, LiveServer, write_xlsx

HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"
CHATS = "/api/v1/chat/workflows"
SCRIPTED = "<img src=x onerror=window.__pwned=1>"


@pytest.fixture(autouse=True)
def _nothing_leaves_loopback(offline: Offline) -> Iterator[None]:
    """Every test here, whatever it asserts itself: the page asked for nothing outside."""
    yield
    assert offline.blocked == []


@pytest.fixture
def data_xlsx(tmp_path: Path) -> Path:
    return write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS)


def _no_duplicates(chat: ChatPage) -> list[tuple[int, str]]:
    entries = chat.entries()
    seqs = [seq for seq, _ in entries]
    assert seqs == sorted(set(seqs)), entries
    return entries


def test_the_seeds_flow_by_clicking(
    chat_page: ChatPage, data_xlsx: Path, tmp_path: Path, offline: Offline
) -> None:
    page = chat_page.page
    chat_page.create_chat("Q3 postal codes")
    chat_page.upload(data_xlsx)
    cells = chat_page.file_row("data.xlsx", 1).locator("td").all_text_contents()
    assert cells == [
        "data.xlsx",
        "1",
        "5",
        "name, postal_code, city",
        "upload",
        "Download data.xlsx v1",
    ]
    step = chat_page.add_step("excel/extract-columns-to-file")
    # The form's column choices are the input's real columns; the example's are ticked.
    columns = step.get_by_role("group", name="Columns")
    assert columns.get_by_role("checkbox").evaluate_all("els => els.map(e => e.value)") == [
        "name",
        "postal_code",
        "city",
    ]
    expect(step.get_by_label("postal_code")).to_be_checked()
    expect(step.get_by_label("Remove Duplicates")).to_be_checked()
    step.get_by_label("name").uncheck()
    chat_page.run()
    chat_page.wait_state("completed")
    expect(page.get_by_label("Run progress")).to_have_js_property("value", 100)
    expect(page.locator("#run-percent")).to_have_text("100%")
    out = chat_page.download("Download data_extract-columns.xlsx", tmp_path / "out.xlsx")
    assert sheet_rows(out) == [["postal_code"], ["01234"], ["98765"], ["00501"]]
    types = [kind for _, kind in _no_duplicates(chat_page)]
    assert types == [
        "file_uploaded",
        "message_added",
        "workflow_started",
        "step_completed",
        "workflow_completed",
        "message_added",
    ]
    listed = page.locator("#chat-list li").filter(has_text="Q3 postal codes")
    expect(listed.locator(".activity")).to_contain_text("last activity")
    assert offline.blocked == []


def test_a_three_step_workflow_previewed_then_run(
    chat_page: ChatPage, data_xlsx: Path, offline: Offline
) -> None:
    page = chat_page.page
    chat_page.create_chat("three steps")
    chat_page.upload(data_xlsx)
    counts = chat_page.add_step("excel/value-counts")
    dedupe = chat_page.add_step("excel/remove-duplicates")
    select = chat_page.add_step("excel/select-columns")
    extra = chat_page.add_step("excel/inspect")
    page.get_by_role("button", name="Remove step 4").click()
    expect(extra).to_have_count(0)
    # Into order: select, de-duplicate, count.
    page.get_by_role("button", name="Move step 3 up").click()
    page.get_by_role("button", name="Move step 2 up").click()
    page.get_by_role("button", name="Move step 3 up").click()
    expect(page.locator("#steps > li h3")).to_have_text(
        [
            "Step 1: excel/select-columns",
            "Step 2: excel/remove-duplicates",
            "Step 3: excel/value-counts",
        ]
    )
    select = chat_page.step(1)
    for name in ("name", "postal_code", "city"):
        select.get_by_label(name).set_checked(name != "name")
    dedupe = chat_page.step(2)
    dedupe.get_by_role("group", name="Columns").get_by_label("postal_code").check()
    counts = chat_page.step(3)
    counts.get_by_label("Column", exact=True).select_option("city")
    counts.get_by_label("Top N").fill("")
    counts.get_by_label("Include Percent").uncheck()
    page.get_by_role("button", name="Preview").click()
    previews = page.locator("#preview-area .preview-step")
    expect(previews).to_have_count(3)
    assert chat_page.table(previews.nth(0).locator("table").first) == [
        ["postal_code", "city"],
        ["01234", "Lisbon"],
        ["98765", "Porto"],
        ["01234", "Lisbon"],
        ["00501", "Holtsville"],
        ["98765", "Porto"],
    ]
    assert chat_page.table(previews.nth(1).locator("table").first) == [
        ["postal_code", "city"],
        ["01234", "Lisbon"],
        ["98765", "Porto"],
        ["00501", "Holtsville"],
    ]
    assert chat_page.table(previews.nth(2).locator("table").first) == [
        ["city", "count"],
        ["Holtsville", "1"],  # ties in the order of the values
        ["Lisbon", "1"],
        ["Porto", "1"],
    ]
    chat_page.run()
    chat_page.wait_state("completed")
    result = page.locator("#run-outcome .table-block").filter(has_text="Step 3: excel/value-counts")
    expect(result.first).to_be_visible()
    assert offline.blocked == []


def test_a_failing_run_shows_its_error_and_its_step(
    chat_page: ChatPage, data_xlsx: Path, offline: Offline
) -> None:
    chat_page.create_chat("fails")
    chat_page.upload(data_xlsx)
    first = chat_page.add_step("excel/select-columns")
    for name in ("name", "postal_code", "city"):
        first.get_by_label(name).set_checked(name == "city")
    second = chat_page.add_step("excel/extract-columns-to-file")
    second.get_by_label("postal_code").check()  # the input has it; step 1 dropped it
    chat_page.run()
    chat_page.wait_state("failed")
    error = chat_page.page.locator("#run-outcome .run-error")
    expect(error).to_contain_text("Step 2 (excel/extract-columns-to-file): ")
    expect(error).to_contain_text("postal_code")
    expect(chat_page.page.locator("#run-outcome")).to_contain_text("code: column_not_found")
    assert [kind for _, kind in _no_duplicates(chat_page)][-2:] == [
        "workflow_failed",
        "message_added",
    ]
    assert offline.blocked == []


def test_a_refused_step_points_at_its_field(chat_page: ChatPage, data_xlsx: Path) -> None:
    chat_page.create_chat("invalid")
    chat_page.upload(data_xlsx)
    chat_page.add_step("excel/extract-columns-to-file")
    counts = chat_page.add_step("excel/value-counts")
    counts.get_by_label("Top N").fill("0")
    chat_page.run()
    expect(counts).to_have_class("step invalid")
    field = counts.get_by_label("Top N")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(counts.locator(".field-error:visible")).to_have_text(
        "steps[1] (excel/value-counts): top_n: Input should be greater than or equal to 1"
    )
    expect(chat_page.step(1)).to_have_class("step")
    expect(chat_page.state).to_have_text("no run yet")


def test_an_upload_refusal_is_shown_in_words(chat_page: ChatPage, offline: Offline) -> None:
    chat_page.create_chat("refusals")
    chat_page.page.get_by_label("Choose files").set_input_files(
        [str(HOSTILE / "encrypted_password.xlsx"), str(HOSTILE / "macro_enabled.xlsm")]
    )
    alerts = chat_page.page.locator("#uploads .error")
    expect(alerts).to_have_count(2)
    expect(alerts.filter(has_text="encrypted_password.xlsx")).to_have_text(
        "file 'encrypted_password.xlsx' was refused: "
        "Password-protected workbooks are not supported."
    )
    expect(chat_page.page.locator("#file-list")).to_have_text("No files yet.")
    assert offline.blocked == []


def test_files_dropped_on_the_page_are_uploaded(chat_page: ChatPage) -> None:
    chat_page.create_chat("dropped")
    dropped = chat_page.page.evaluate_handle(
        """() => {
            const data = new DataTransfer();
            data.items.add(new File(["a;b\\n1;x\\n2;y\\n"], "drop.csv", {type: "text/csv"}));
            data.items.add(new File(["c\\n3\\n"], "two.csv", {type: "text/csv"}));
            return data;
        }"""
    )
    chat_page.page.locator("#drop").dispatch_event("drop", {"dataTransfer": dropped})
    expect(chat_page.file_row("drop.csv", 1).locator("td").nth(2)).to_have_text("2")
    expect(chat_page.file_row("drop.csv", 1).locator("td").nth(3)).to_have_text("a, b")
    expect(chat_page.file_row("two.csv", 1).locator("td").nth(2)).to_have_text("1")
    expect(chat_page.page.locator("#uploads .upload-state")).to_have_text(["uploaded", "uploaded"])
    expect(chat_page.page.get_by_label("Uploading drop.csv")).to_have_js_property("value", 100)


def test_a_hostile_cell_is_shown_as_text(
    chat_page: ChatPage, tmp_path: Path, offline: Offline
) -> None:
    page = chat_page.page
    rows = [["note", "<b>bold</b>"], [SCRIPTED, "x"], ["</td><script>alert(1)</script>", "y"]]
    chat_page.create_chat(SCRIPTED)
    chat_page.upload(write_xlsx(tmp_path / "hostile.xlsx", rows))
    chat_page.add_step("excel/preview")
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview-area table").first
    expect(preview).to_be_visible()
    assert chat_page.table(preview) == rows
    expect(page.locator("#chat-list .title").filter(has_text=SCRIPTED)).to_have_count(1)
    expect(chat_page.file_row("hostile.xlsx")).to_contain_text("note, <b>bold</b>")
    assert page.locator("img").count() == 0
    assert page.locator("#preview-area b, #chat-list img, #file-list b").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert offline.blocked == []


def test_a_saved_workflow_runs_on_another_file(
    chat_page: ChatPage, data_xlsx: Path, tmp_path: Path
) -> None:
    page = chat_page.page
    chat_page.create_chat("saved")
    chat_page.upload(data_xlsx)
    step = chat_page.add_step("excel/extract-columns-to-file")
    step.get_by_label("Output").fill("codes.xlsx")
    page.get_by_label("Workflow name").fill("postal codes browser")
    page.get_by_role("button", name="Save workflow").click()
    expect(page.locator("#builder-message")).to_have_text("Saved as “postal codes browser”")
    other = write_xlsx(tmp_path / "other.xlsx", [["postal_code"], ["11111"], ["11111"], ["22"]])
    chat_page.upload(other)
    page.get_by_label("Input file").select_option("other.xlsx")
    page.get_by_label("Saved workflow").select_option("postal codes browser")
    page.get_by_role("button", name="Run saved workflow").click()
    chat_page.wait_state("completed")
    out = chat_page.download("Download codes.xlsx", tmp_path / "codes.xlsx")
    assert sheet_rows(out) == [["postal_code"], ["11111"], ["22"]]


def test_cancel(chat_page: ChatPage, tmp_path: Path) -> None:
    chat_page.create_chat("cancel me")
    chat_page.add_long_conversion(tmp_path / "big.csv", rows=600_000)
    chat_page.run()
    chat_page.wait_state("running")
    cancel = chat_page.page.get_by_role("button", name="Cancel", exact=True)
    expect(cancel).to_be_enabled()
    cancel.click()
    chat_page.wait_state("cancelled")
    expect(chat_page.page.locator("#run-outcome")).to_have_text("The run was cancelled.")
    expect(cancel).to_be_disabled()
    expect(
        chat_page.page.locator("#transcript > li[data-type='workflow_cancelled']")
    ).to_have_count(1)
    kinds = [kind for _, kind in _no_duplicates(chat_page)]
    assert kinds[kinds.index("workflow_started") :][:2] == [
        "workflow_started",
        "workflow_cancelled",
    ]


def test_a_chat_is_renamed_and_deleted(chat_page: ChatPage) -> None:
    page = chat_page.page
    chat_page.create_chat("before")
    page.get_by_label("Chat title", exact=True).fill("after")
    page.get_by_role("button", name="Rename").click()
    expect(page.locator("#chat-list .title").filter(has_text="after")).to_have_count(1)
    expect(page.locator("#chat-list .title").filter(has_text="before")).to_have_count(0)
    page.get_by_role("button", name="Delete chat").click()
    page.get_by_role("button", name="Keep it").click()
    expect(page.locator("#chat")).to_be_visible()
    page.get_by_role("button", name="Delete chat").click()
    page.get_by_role("button", name="Yes, delete it").click()
    expect(page.locator("#chat")).to_be_hidden()
    expect(page.locator("#chat-list .title").filter(has_text="after")).to_have_count(0)


def test_more_chats_are_listed_on_request(page_server: LiveServer, chat_page: ChatPage) -> None:
    with httpx.Client(base_url=page_server.url, timeout=30) as client:
        for n in range(51):
            assert client.post(CHATS, json={"title": f"many {n}"}).status_code == 201
        total = len(client.get(CHATS, params={"limit": 200}).json()["data"]["items"])
    page = chat_page.open().page
    items = page.locator("#chat-list li[data-chat]")
    expect(items).to_have_count(50)
    expect(items.first.locator(".title")).to_have_text("many 50")  # newest first
    page.get_by_role("button", name="More chats").click()
    expect(items).to_have_count(min(total, 100))
    titles = items.locator(".title").all_text_contents()
    assert len(set(titles[:51])) == 51 and titles[:51] == [f"many {n}" for n in range(50, -1, -1)]


def test_columns_are_sent_in_the_order_they_are_ticked(
    chat_page: ChatPage, data_xlsx: Path
) -> None:
    chat_page.create_chat("order")
    chat_page.upload(data_xlsx)
    step = chat_page.add_step("excel/extract-columns-to-file")
    group = step.get_by_role("group", name="Columns")
    group.get_by_label("postal_code").uncheck()
    group.get_by_label("city").check()
    group.get_by_label("postal_code").check()
    expect(group.locator(".order")).to_have_text("Order: city, postal_code")
    chat_page.page.get_by_role("button", name="Preview").click()
    table = chat_page.page.locator("#preview-area table").first
    expect(table.locator("th")).to_have_text(["city", "postal_code"])
