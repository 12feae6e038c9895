"""The operation registry: one decorator registers a named spreadsheet step.

An operation is a plain synchronous function ``run(ctx, args) -> StepOutput``.  It runs in a
worker thread, never touches asyncio, and reports progress through ``ctx.report``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import polars as pl
from pydantic import BaseModel, ConfigDict

ArgsT = TypeVar("ArgsT", bound=BaseModel)


class OperationArgs(BaseModel):
    """Base for operation arguments: unknown keys are refused so typos fail before a run."""

    model_config = ConfigDict(extra="forbid")


class StepFailed(Exception):
    """A step failed for a reason the user can fix; ``code`` is stable, ``message`` is shown."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class Cancelled(Exception):
    """Raised inside a step when its run was cancelled or the server is shutting down."""


@dataclass
class WrittenFile:
    """A file a step wrote into the chat's output directory (already renamed into place)."""

    name: str
    path: Path
    media_type: str
    size: int
    sha256: str
    rows: int
    columns: list[str]


@dataclass
class StepOutput:
    """What a step hands on: the table for the next step, and any files it wrote."""

    table: pl.DataFrame | None = None
    files: list[WrittenFile] = field(default_factory=list)
    result: dict[str, Any] | None = None
    message: str = "Step completed successfully"


class StepContext:
    """Everything a step may use: its input, a writer for outputs, progress and cancellation.

    Built by the run service; operations must not reach past it.
    """

    def __init__(
        self,
        *,
        input_name: str,
        load_input: Callable[[str | None], pl.DataFrame],
        write_table: Callable[..., WrittenFile],
        report: Callable[[float, str], None],
        check_cancelled: Callable[[], None],
    ) -> None:
        self.input_name = input_name
        self._load_input = load_input
        self._write_table = write_table
        self._report = report
        self._check_cancelled = check_cancelled

    def read_input(self, sheet: str | None = None) -> pl.DataFrame:
        """The previous step's table, or the run's input file (``sheet`` picks an xlsx sheet)."""
        return self._load_input(sheet)

    def write_table(
        self, table: pl.DataFrame, *, name: str | None = None, sheet: str | None = None
    ) -> WrittenFile:
        """Write ``table`` as a new output file; ``name`` defaults to one derived from the input."""
        return self._write_table(table, name=name, sheet=sheet)

    def report(self, percent: float, message: str) -> None:
        """Report this step's progress, 0-100; also a cancellation point."""
        self._check_cancelled()
        self._report(percent, message)

    def check_cancelled(self) -> None:
        """Raise Cancelled if the run should stop; call it between chunks of long work."""
        self._check_cancelled()


StepFn = Callable[[StepContext, ArgsT], StepOutput]


@dataclass(frozen=True)
class Operation(Generic[ArgsT]):
    """A registered operation: its name, argument model and implementation."""

    name: str
    description: str
    args_model: type[ArgsT]
    example: dict[str, Any]
    run: StepFn[ArgsT]
    # Columns the step needs from its input, so a run can be refused before it starts.
    input_columns: Callable[[ArgsT], list[str]] | None = None

    def json_schema(self) -> dict[str, Any]:
        """The arguments' JSON Schema, as served by GET /operations."""
        return self.args_model.model_json_schema()


class Registry:
    """Operations by name, in registration order."""

    def __init__(self) -> None:
        self._operations: dict[str, Operation[Any]] = {}

    def register(
        self,
        name: str,
        *,
        description: str,
        args: type[ArgsT],
        example: dict[str, Any],
        input_columns: Callable[[ArgsT], list[str]] | None = None,
    ) -> Callable[[StepFn[ArgsT]], StepFn[ArgsT]]:
        """Decorator: register ``fn`` as operation ``name``."""

        def decorate(fn: StepFn[ArgsT]) -> StepFn[ArgsT]:
            if name in self._operations:
                raise ValueError(f"operation {name!r} registered twice")
            args.model_validate(example)  # an example that does not validate is a bug
            self._operations[name] = Operation(name, description, args, example, fn, input_columns)
            return fn

        return decorate

    def get(self, name: str) -> Operation[Any] | None:
        return self._operations.get(name)

    def names(self) -> list[str]:
        return list(self._operations)

    def all(self) -> list[Operation[Any]]:
        return list(self._operations.values())


registry = Registry()
