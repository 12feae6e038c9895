"""The server restarts mid-run under an open page: the page shows that it is reconnecting,
comes back with ``?since=`` its last seq, and shows the run's end (interrupted) with nothing
lost and nothing twice. A real ``chatflow serve``, killed and started again on the same port
and data dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, WebSocket, expect

from tests.browser.conftest import Offline, new_context
from tests.browser.pages import ChatPage
from tests.support import chatflow_process, free_ports

# The slower xlsx engine and enough rows: the run is still writing when the server dies.
ENV = {"CHATFLOW_XLSX_WRITER": "xlsxwriter", "CHATFLOW_LOG_LEVEL": "warning"}
ROWS = 600_000


@pytest.mark.slow
def test_the_page_reconnects_after_a_restart_and_shows_the_run_interrupted(
    browser: Browser, offline: Offline, tmp_path: Path
) -> None:
    (port,) = free_ports()
    data_dir = tmp_path / "data"
    context = new_context(browser, offline, viewport={"width": 1280, "height": 900})
    sockets: list[WebSocket] = []
    try:
        page = context.new_page()
        page.on("websocket", lambda ws: sockets.append(ws))
        chat = ChatPage(page, f"http://127.0.0.1:{port}")
        with chatflow_process(data_dir, tmp_path / "first.log", port=port, env=ENV):
            chat.open().create_chat("restarted")
            chat.add_long_conversion(tmp_path / "big.csv", rows=ROWS)
            chat.run()
            chat.wait_state("running")
            seen = max(seq for seq, _ in chat.entries())
        # Leaving the block kills the server (SIGKILL): the run is cut short.
        expect(page.locator("#connection")).to_have_text("reconnecting", timeout=30_000)
        with chatflow_process(data_dir, tmp_path / "second.log", port=port, env=ENV):
            chat.wait_state("interrupted")
            expect(page.locator("#connection")).to_have_text("live")
            error = page.locator("#run-outcome .run-error")
            expect(error).to_have_text(
                "Step 1 (excel/convert): the server stopped before this run finished; run it again"
            )
            expect(page.locator("#run-outcome")).to_contain_text("code: interrupted")
            entries = chat.entries()
    finally:
        context.close()
    seqs = [seq for seq, _ in entries]
    assert seqs == sorted(set(seqs)), entries
    kinds = [kind for _, kind in entries]
    assert kinds.count("workflow_started") == 1 and kinds.count("workflow_failed") == 1, kinds
    # The socket that came back asked for what followed the last event the page had seen.
    resumed = [ws.url for ws in sockets[1:]]
    assert resumed and all("since=" in url for url in resumed), resumed
    assert int(resumed[-1].split("since=")[1].split("&")[0]) >= seen
    assert offline.blocked == []
