"""Run one registered operation against real files in a temp dir, capturing its reports."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import polars as pl

from chatflow.operations import load_all
from chatflow.operations.registry import StepContext, StepOutput
from chatflow.runs.step_io import RunFiles, StoredRef, cancel_checker, perform_step
from chatflow.spreadsheets.writing import write_csv
from chatflow.storage import FileStore
from tests.fixtures_util import write_table_xlsx


class StepHarness:
    """A chat with files on disk; ``run`` executes a step the way a run does.

    ``input`` becomes the run's input file, which the first step reads;
    ``others`` are further files of the chat, readable with ``ctx.read_file``.
    """

    def __init__(
        self,
        tmp: Path,
        input: pl.DataFrame,
        *,
        input_name: str = "data.xlsx",
        others: dict[str, pl.DataFrame] | None = None,
        dry_run: bool = False,
    ) -> None:
        self.store = FileStore(tmp / "files")
        self.chat_id = str(uuid.uuid4())
        self.store.chat_dir(self.chat_id).mkdir(parents=True)
        chat_files: dict[str, StoredRef] = {}
        for name, table in {input_name: input, **(others or {})}.items():
            kind = "csv" if name.endswith(".csv") else "xlsx"
            path = self.store.path(self.chat_id, self.store.new_storage_name(f".{kind}"))
            (write_csv if kind == "csv" else write_table_xlsx)(table, path)
            chat_files[name] = StoredRef(path, kind)
        self.files = RunFiles(
            store=self.store,
            chat_id=self.chat_id,
            input_name=input_name,
            input_path=chat_files[input_name].path,
            input_kind=chat_files[input_name].kind,
            input_delimiter=None,
            chat_files=chat_files,
            taken_names=set(chat_files),
            dry_run=dry_run,
        )
        self.reports: list[tuple[float, str]] = []
        self.cancel = threading.Event()
        self.registry = load_all()

    def _report(self, percent: float, message: str, minor: bool = False) -> None:
        if not minor:
            self.reports.append((percent, message))

    def run(self, operation: str, arguments: dict[str, Any]) -> StepOutput:
        """Validate ``arguments`` with the operation's model and run it."""
        op = self.registry.get(operation)
        assert op is not None, operation
        args = op.args_model.model_validate(arguments)
        return perform_step(
            operation=op,
            args=args,
            files=self.files,
            report=self._report,
            check_cancelled=cancel_checker(self.cancel),
        )

    def context(self, operation: str = "test/op") -> StepContext:
        return StepContext(
            io=self.files,
            operation=operation,
            report=self._report,
            check_cancelled=cancel_checker(self.cancel),
        )
