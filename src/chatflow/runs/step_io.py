"""A step's file I/O: load the input and the chat's files, write outputs. No asyncio here."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import polars as pl

from chatflow import filenames
from chatflow.failures import Cancelled, StepFailed
from chatflow.operations.limits import Limits
from chatflow.operations.registry import (
    Operation,
    ReportFn,
    StepContext,
    StepOutput,
    WriteOptions,
    WrittenFile,
)
from chatflow.runs.worker_process import confined_pool
from chatflow.spreadsheets.reading import read_table, sheet_names
from chatflow.spreadsheets.writing import XlsxEngine, write_csv, write_parquet, write_workbook
from chatflow.storage import FileStore


class Processes(Protocol):
    """Where reads and writes run: ``WorkerPool`` in the server, ``InlineProcesses`` elsewhere."""

    def call(
        self,
        job: Callable[..., Any],
        *args: Any,
        interrupt: Callable[[], None] = ...,
        progress: Callable[[Any], None] | None = None,
        **kwargs: Any,
    ) -> Any: ...


class InlineProcesses:
    """Runs each job in the calling thread (tests, benchmarks and tools without a pool)."""

    def call(
        self,
        job: Callable[..., Any],
        *args: Any,
        interrupt: Callable[[], None] = lambda: None,
        progress: Callable[[Any], None] | None = None,
        **kwargs: Any,
    ) -> Any:
        if progress is not None:
            report = progress

            def relay(payload: Any) -> None:
                interrupt()  # a job's progress(None) asks only whether to stop
                if payload is not None:
                    report(payload)

            kwargs["progress"] = relay
        return job(*args, **kwargs)


def read_head(
    path: Path, *, kind: str, sheet: str | None, delimiter: str | None, rows: int | None
) -> pl.DataFrame:
    """``read_table``, cut to ``rows`` where it runs so a sample does not cross the pipe whole."""
    table = read_table(path, kind=kind, sheet=sheet, delimiter=delimiter)
    return table.head(rows) if rows is not None else table


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


OUTPUT_KINDS = {".xlsx": "xlsx", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class StoredRef:
    """Where a chat file's bytes are and how to read them."""

    path: Path
    kind: str
    delimiter: str | None = None


@dataclass
class RunFiles:
    """A run's StepIO: its input, the chat's other files, and where outputs go.

    ``current`` is the table the previous step handed on (None before the first step), in the
    process that runs the step; the server keeps only ``handed``, where that table lies as an
    uncompressed Arrow IPC temp file in the chat's folder, so a big table is held by one process
    (the worker) and never copied through the server between steps.
    With ``dry_run`` nothing is written and inputs are cut to ``sample_rows``.
    """

    store: FileStore
    chat_id: str
    input_name: str
    input_path: Path
    input_kind: str
    input_delimiter: str | None
    chat_files: dict[str, StoredRef]  # name -> its latest version
    taken_names: set[str]
    dry_run: bool = False
    sample_rows: int | None = None
    processes: Processes = field(default_factory=InlineProcesses)
    xlsx_engine: XlsxEngine = "xlsxwriter"
    limits: Limits = field(default_factory=Limits)
    # Starts the storage name of every output and temp file of this run (see ``release``).
    output_prefix: str = ""
    # Raises Cancelled once the run is stopped; checked while a worker reads or writes.
    interrupt: Callable[[], None] = field(default=lambda: None, compare=False)
    current: pl.DataFrame | None = None
    handed: Path | None = None
    unwritten: bool = False  # ``current`` was changed by a step and is in no file yet
    written: list[WrittenFile] = field(default_factory=list)

    def detached(self) -> RunFiles:
        """A copy to send to a worker process: no pool, no callbacks, no table, nothing written
        yet; the job folds what it changes back (see step_jobs)."""
        return dataclasses.replace(
            self,
            processes=InlineProcesses(),
            interrupt=_never,
            current=None,
            handed=None,
            written=[],
            taken_names=set(self.taken_names),
        )

    def hand_off(self, table: pl.DataFrame) -> Path:
        """Write ``table`` where the next step will find it: a temp file in the chat's folder
        (a crash leaves it to the start-up sweep), uncompressed: it is read back at once."""
        path = self.store.temp_path(self.chat_id, self.output_prefix)
        table.write_ipc(path, compression="uncompressed")
        return path

    def drop_handed(self, keep: Path | None = None) -> None:
        """Remove the hand-off file unless it is ``keep``; the run has moved past it."""
        if self.handed is not None and self.handed != keep:
            self.handed.unlink(missing_ok=True)
        self.handed = keep

    def release(self) -> None:
        """Remove the run's temp files, whatever its ending: the hand-off, and one a worker
        finished after the run had stopped waiting for it (they share ``output_prefix``)."""
        self.handed = None
        self.store.remove_prefixed(self.chat_id, self.output_prefix, temps_only=True)

    def _read(
        self, path: Path, kind: str, sheet: str | None, delimiter: str | None = None
    ) -> pl.DataFrame:
        table: pl.DataFrame = self.processes.call(
            read_head,
            path,
            kind=kind,
            sheet=sheet,
            delimiter=delimiter,
            rows=self.sample_rows,
            interrupt=self.interrupt,
        )
        return table

    def load_input(self, sheet: str | None) -> pl.DataFrame:
        if self.current is not None and sheet is None:
            return self.current
        return self._read(self.input_path, self.input_kind, sheet, self.input_delimiter)

    def load_file(self, name: str, sheet: str | None) -> pl.DataFrame:
        found = self.chat_files.get(name)
        if found is None:
            available = ", ".join(sorted(self.chat_files)) or "(none)"
            raise StepFailed(
                "file_not_found",
                f"File {name!r} is not in this chat; files: {available}",
                details={"file": name, "available": sorted(self.chat_files)},
            )
        return self._read(found.path, found.kind, sheet, found.delimiter)

    def input_sheet_names(self) -> list[str]:
        names: list[str] = self.processes.call(
            sheet_names, self.input_path, self.input_kind, interrupt=self.interrupt
        )
        return names

    def file_names(self) -> list[str]:
        return sorted(self.chat_files)

    def run_confined(self, job: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return confined_pool().call(job, *args, interrupt=self.interrupt, **kwargs)

    def discard_written(self) -> None:
        """Remove what this run wrote (a failed or cancelled run leaves no outputs), including
        a file its worker finished after the run had stopped waiting for it."""
        for item in self.written:
            if item.path != Path():
                item.path.unlink(missing_ok=True)
        self.written.clear()
        if self.output_prefix and not self.dry_run:
            self.store.remove_prefixed(self.chat_id, self.output_prefix)

    def default_name(self, operation: str, extension: str) -> str:
        stem = PurePosixPath(self.input_name).stem
        slug = operation.rsplit("/", 1)[-1].removesuffix("-to-file")
        base = f"{stem}_{slug}"
        candidate, n = f"{base}{extension}", 1
        while candidate in self.taken_names:
            n += 1
            candidate = f"{base}_{n}{extension}"
        return candidate

    def write(
        self,
        sheets: Mapping[str, pl.DataFrame],
        *,
        operation: str,
        name: str | None,
        options: WriteOptions,
        progress: Callable[[float], None],
    ) -> WrittenFile:
        """Write under a new generated storage name; a given ``name`` gets a new version if it
        exists, a default name never collides with an existing one."""
        display, kind = self._output_name(operation, name, options.format)
        if kind != "xlsx" and len(sheets) != 1:
            raise StepFailed("one_table_only", f"A {kind} file holds one table, not {len(sheets)}.")
        first = next(iter(sheets.values()))
        self.taken_names.add(display)
        written = WrittenFile(
            name=display,
            path=Path(),
            kind=kind,
            media_type=filenames.MEDIA_TYPES[kind],
            size=0,
            sha256="",
            rows=sum(table.height for table in sheets.values()),
            columns=list(first.columns),
            sheets=list(sheets) if kind == "xlsx" else None,
        )
        if self.dry_run:
            return written
        self.store.chat_dir(self.chat_id).mkdir(parents=True, exist_ok=True)
        storage_name = self.store.new_storage_name(f".{kind}", self.output_prefix)
        dest = self.store.path(self.chat_id, storage_name)
        try:
            self._write_file(kind, sheets, dest, options, progress)
        except BaseException:
            # A cancel can land in the final progress report, after the rename; a killed
            # worker leaves its temp file behind.
            dest.unlink(missing_ok=True)
            remove_partial_writes(dest)
            raise
        written = dataclasses.replace(
            written, path=dest, size=dest.stat().st_size, sha256=sha256_of(dest)
        )
        self.written.append(written)
        return written

    def _output_name(self, operation: str, name: str | None, fmt: str | None) -> tuple[str, str]:
        """The output's display name and kind: the format asked for, else the name's, else xlsx."""
        display = filenames.validate(name) if name else None
        kind = (
            fmt
            or (OUTPUT_KINDS.get(PurePosixPath(display).suffix.lower()) if display else None)
            or "xlsx"
        )
        extension = f".{kind}"
        if display is None:
            display = self.default_name(operation, extension)
        elif PurePosixPath(display).suffix.lower() != extension:
            display += extension
        return display, kind

    def _write_file(
        self,
        kind: str,
        sheets: Mapping[str, pl.DataFrame],
        dest: Path,
        options: WriteOptions,
        progress: Callable[[float], None],
    ) -> None:
        call, first = self.processes.call, next(iter(sheets.values()))
        if kind == "csv":
            call(
                write_csv,
                first,
                dest,
                delimiter=options.delimiter,
                encoding=options.encoding,
                escape_formulas=options.escape_formulas,
                progress=progress,
                interrupt=self.interrupt,
            )
        elif kind == "parquet":
            call(write_parquet, first, dest, progress=progress, interrupt=self.interrupt)
        else:
            call(
                write_workbook,
                dict(sheets),
                dest,
                engine=self.xlsx_engine,
                progress=progress,
                interrupt=self.interrupt,
            )


def handed_table(path: Path | None) -> pl.DataFrame | None:
    """The table a step handed on (None before the first step)."""
    return pl.read_ipc(path) if path is not None else None


def perform_step(
    *,
    operation: Operation[Any],
    args: Any,
    files: RunFiles,
    report: ReportFn,
    check_cancelled: Callable[[], None],
) -> StepOutput:
    """Run one step in the calling (worker) thread; it reads ``files.current``."""
    context = StepContext(
        io=files, operation=operation.name, report=report, check_cancelled=check_cancelled
    )
    files.interrupt = check_cancelled
    check_cancelled()
    output = operation.run(context, args)
    report(100, output.message)
    files.current = output.table
    if output.wrote_table:
        files.unwritten = False
    elif not output.passthrough and output.table is not None:
        files.unwritten = True
    return output


def _never() -> None:
    """The interrupt of a detached RunFiles: the worker's own stop check replaces it."""


def cancel_checker(flag: Any) -> Callable[[], None]:
    """A ``check_cancelled`` for a threading.Event-like flag."""

    def check() -> None:
        if flag.is_set():
            raise Cancelled()

    return check


def remove_partial_writes(dest: Path) -> None:
    """Remove the temp file a killed writer left beside ``dest`` (see atomic_destination)."""
    for leftover in dest.parent.glob(f".{dest.name}.*.part"):
        leftover.unlink(missing_ok=True)
