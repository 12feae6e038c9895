"""The thread side of a run: load the input, run one step, write outputs. No asyncio here."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import polars as pl

from chatflow import filenames
from chatflow.operations.registry import (
    Cancelled,
    Operation,
    StepContext,
    StepFailed,
    StepOutput,
    WrittenFile,
)
from chatflow.spreadsheets.reading import read_table
from chatflow.spreadsheets.writing import write_csv, write_xlsx
from chatflow.storage import FileStore


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class RunFiles:
    """Where a run reads from and writes to, and which names are taken in its chat."""

    store: FileStore
    chat_id: str
    input_name: str
    input_path: Path
    input_kind: str
    taken_names: set[str]
    written: list[WrittenFile] = field(default_factory=list)

    def default_name(self, operation: str) -> str:
        stem = PurePosixPath(self.input_name).stem
        slug = operation.rsplit("/", 1)[-1].removesuffix("-to-file")
        base = f"{stem}_{slug}"
        candidate, n = f"{base}.xlsx", 1
        while candidate in self.taken_names:
            n += 1
            candidate = f"{base}_{n}.xlsx"
        return candidate

    def write(
        self,
        table: pl.DataFrame,
        *,
        operation: str,
        name: str | None,
        sheet: str | None,
        progress: Callable[[float], None] | None = None,
    ) -> WrittenFile:
        """Write ``table`` under a new generated storage name; a given ``name`` gets a new
        version if it exists, a default name never collides with an existing one."""
        display = filenames.validate(name) if name else self.default_name(operation)
        kind = filenames.kind_of(display)
        if kind is None:
            display, kind = f"{display}.xlsx", "xlsx"
        storage_name = self.store.new_storage_name(PurePosixPath(display).suffix.lower())
        self.store.chat_dir(self.chat_id).mkdir(parents=True, exist_ok=True)
        dest = self.store.path(self.chat_id, storage_name)
        if kind == "csv":
            write_csv(table, dest, progress=progress)
        else:
            write_xlsx(table, dest, sheet_name=sheet or "Sheet1", progress=progress)
        written = WrittenFile(
            name=display,
            path=dest,
            media_type=filenames.MEDIA_TYPES[kind],
            size=dest.stat().st_size,
            sha256=sha256_of(dest),
            rows=table.height,
            columns=list(table.columns),
        )
        self.taken_names.add(display)
        self.written.append(written)
        return written


def run_step(
    *,
    operation: Operation[Any],
    args: Any,
    files: RunFiles,
    table: pl.DataFrame | None,
    report: Callable[[float, str], None],
    check_cancelled: Callable[[], None],
) -> StepOutput:
    """Run one step in the calling (worker) thread; ``table`` is the previous step's output."""

    def load_input(sheet: str | None) -> pl.DataFrame:
        if table is not None and sheet is None:
            return table
        kind: Literal["xlsx", "csv"] = "csv" if files.input_kind == "csv" else "xlsx"
        return read_table(files.input_path, kind=kind, sheet=sheet)

    def write_table(frame: pl.DataFrame, *, name: str | None, sheet: str | None) -> WrittenFile:
        check_cancelled()
        return files.write(frame, operation=operation.name, name=name, sheet=sheet)

    context = StepContext(
        input_name=files.input_name,
        load_input=load_input,
        write_table=write_table,
        report=report,
        check_cancelled=check_cancelled,
    )
    check_cancelled()
    output = operation.run(context, args)
    report(100, output.message)
    return output


def cancel_checker(flag: Any) -> Callable[[], None]:
    """A ``check_cancelled`` for a threading.Event-like flag."""

    def check() -> None:
        if flag.is_set():
            raise Cancelled()

    return check


__all__ = ["RunFiles", "run_step", "cancel_checker", "StepFailed", "Cancelled"]
