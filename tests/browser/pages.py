"""The chat page as the tests drive it: the actions every scenario repeats, found by label and
role the way a person (or a screen reader) finds them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import openpyxl

from tests.support import upload

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

RUN_TIMEOUT_MS = 120_000


class ChatPage:
    def __init__(self, page: Page, url: str) -> None:
        self.page = page
        self.url = url

    def open(self) -> ChatPage:
        from playwright.sync_api import expect

        self.page.goto(self.url + "/")
        expect(self.page.get_by_label("New chat title")).to_be_visible()
        return self

    def create_chat(self, title: str) -> None:
        from playwright.sync_api import expect

        self.page.get_by_label("New chat title").fill(title)
        self.page.get_by_role("button", name="Create chat").click()
        expect(self.page.get_by_label("Chat title", exact=True)).to_have_value(title)
        expect(self.page.locator("#connection")).to_have_text("live")

    def chat_id(self) -> str:
        """The open chat's id, as the page holds it."""
        chat_id = self.page.locator("#chat").get_attribute("data-chat-id")
        assert chat_id, "no chat is open"
        return chat_id

    def upload(self, *paths: Path) -> None:
        """Pick ``paths`` in the file input; wait until each is listed."""
        self.page.get_by_label("Choose files").set_input_files([str(p) for p in paths])
        for path in paths:
            self.file_row(path.name).first.wait_for()

    def file_row(self, name: str, version: int | None = None) -> Locator:
        version_part = f"[data-version='{version}']" if version else ""
        return self.page.locator(f"#file-list tr[data-filename='{name}']{version_part}")

    def add_step(self, operation: str) -> Locator:
        self.page.get_by_label("Operation").select_option(operation)
        self.page.get_by_role("button", name="Add step").click()
        return self.step(self.page.locator("#steps > li").count())

    def add_long_conversion(self, csv: Path, rows: int) -> Locator:
        """Write ``rows`` rows to ``csv``, upload it over HTTP and add a step converting it to
        xlsx: a run long enough to watch, cancel or interrupt."""
        lines = "".join(f"{i},n{i},{i * 1.5}\n" for i in range(rows))
        csv.write_text("id,name,amount\n" + lines)
        with httpx.Client(base_url=self.url, timeout=120) as client:
            assert upload(client, self.chat_id(), csv).status_code == 201
        self.file_row(csv.name).wait_for()
        step = self.add_step("excel/convert")
        step.get_by_label("Format").select_option("xlsx")
        step.get_by_label("Delimiter").select_option("")
        step.get_by_label("Encoding").select_option("")
        return step

    def step(self, number: int) -> Locator:
        return self.page.locator(f"#steps > li[data-step='{number}']")

    def run(self) -> None:
        self.page.get_by_role("button", name="Run", exact=True).click()

    @property
    def state(self) -> Locator:
        return self.page.locator("#run-state")

    def wait_state(self, state: str) -> None:
        from playwright.sync_api import expect

        expect(self.state).to_have_text(state, timeout=RUN_TIMEOUT_MS)

    def download(self, link_name: str, dest: Path) -> Path:
        """Click the link named ``link_name``; the downloaded bytes, saved at ``dest``."""
        with self.page.expect_download() as info:
            self.page.get_by_role("link", name=link_name, exact=True).click()
        info.value.save_as(dest)
        return dest

    def entries(self) -> list[tuple[int, str]]:
        """The transcript's entries as (seq, event type), in the order shown."""
        found = self.page.locator("#transcript > li").evaluate_all(
            "items => items.map(item => [Number(item.dataset.seq), item.dataset.type])"
        )
        return [(int(seq), str(kind)) for seq, kind in found]

    def table(self, region: Locator) -> list[list[str]]:
        """A table's header and rows as the page shows them."""
        rows: list[list[str]] = region.locator("tr").evaluate_all(
            "rows => rows.map(row => [...row.cells].map(cell => cell.textContent))"
        )
        return rows


def sheet_rows(path: Path) -> list[list[Any]]:
    """The first sheet of an xlsx, every row, as values."""
    sheet = openpyxl.load_workbook(path, read_only=True).worksheets[0]
    return [list(row) for row in sheet.iter_rows(values_only=True)]
