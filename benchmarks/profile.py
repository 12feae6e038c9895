"""Where the time of (b) goes: the step's thread-side path, in-process, under pyinstrument."""

from __future__ import annotations

import importlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyinstrument import Profiler
from pyinstrument.frame import Frame

from benchmarks.spreadsheet import EXTRACT_STEPS
from chatflow.execution.pipeline import RunFiles, StoredRef, run_step
from chatflow.operations.registry import registry
from chatflow.storage import FileStore

# Functions whose (outermost) time is reported as a share of the step.
STAGES = {
    "read_table": "read (read_table)",
    "extract_columns": "compute (extract_columns)",
    "_fill_sheet": "xlsx cells (_fill_sheet: xlsxwriter write_* per cell)",
    "close": "xlsx close (xlsxwriter Workbook.close: assemble + zip)",
    "sha256_of": "sha256 of the output",
    "_fsync_directory": "fsync directory",
}


def _walk(frame: Frame, inside: frozenset[str]) -> Iterator[tuple[str, float]]:
    name = frame.function or ""
    counted = name in STAGES and name not in inside
    if counted and (name != "close" or "write_workbook" in inside):
        yield name, frame.time
        inside = inside | {name}
    if name == "write_workbook":
        inside = inside | {name}
    for child in frame.children:
        yield from _walk(child, inside)


def profile_extract(src: Path, work_dir: Path, report_path: Path) -> dict[str, Any]:
    """Run the extract step once as the server's worker thread would; the stage breakdown."""
    # Only the operation profiled: other operation modules may be mid-edit in a work tree.
    importlib.import_module("chatflow.operations.extract_columns")
    step = EXTRACT_STEPS[0]
    operation = registry.get(step["operation"])
    assert operation is not None
    args = operation.args_model.model_validate(step["arguments"])
    chat_id = str(uuid.uuid4())
    store = FileStore(work_dir)
    store.chat_dir(chat_id).mkdir(parents=True, exist_ok=True)
    files = RunFiles(
        store=store,
        chat_id=chat_id,
        input_name="orders.xlsx",
        input_path=src,
        input_kind="xlsx",
        input_delimiter=None,
        chat_files={"orders.xlsx": StoredRef(src, "xlsx")},
        taken_names={"orders.xlsx"},
    )
    profiler = Profiler(interval=0.005)
    t0 = time.perf_counter()
    profiler.start()
    run_step(
        operation=operation,
        args=args,
        files=files,
        report=lambda *_: None,
        check_cancelled=lambda: None,
    )
    profiler.stop()
    total = time.perf_counter() - t0
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    session = profiler.last_session
    root = session.root_frame() if session is not None else None
    stages: dict[str, float] = dict.fromkeys(STAGES, 0.0)
    if root is not None:
        for name, seconds in _walk(root, frozenset()):
            stages[name] += seconds
    return {
        "total_s": total,
        "stages_s": {STAGES[name]: seconds for name, seconds in stages.items()},
        "report": str(report_path),
    }
