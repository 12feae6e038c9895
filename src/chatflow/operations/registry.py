"""The operation registry, and what a step may use: its context, its output and its writes.

A registered operation is a plain synchronous function ``run(ctx, args) -> StepOutput`` (the
``@operation`` decorator in ``steps`` builds it around a transform).  It runs in a worker,
never touches asyncio, and reports progress through ``ctx.report``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Generic, Literal, Protocol, TypeVar

import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from chatflow.operations.limits import Limits, oversized

ArgsT = TypeVar("ArgsT", bound=BaseModel)

# The JSON Schema mark of an argument that names columns of the step's input (one name or a
# list): clients such as the chat page offer the input's real columns for it.  Put on a field
# with ``Field(json_schema_extra=INPUT_COLUMNS)``; tests/operations/test_catalogue.py checks
# every operation's example against it.
COLUMN_MARK = "x-chatflow-column"
INPUT_COLUMNS: dict[str, Any] = {COLUMN_MARK: True}


class OperationArgs(BaseModel):
    """Base for operation arguments: unknown keys are refused so typos fail before a run."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any, info: ValidationInfo) -> Any:
        """Refuse a string, list or object past ``Limits`` before any other validator reads it.

        The limits come from the validation context (``Limits.as_context``), else defaults.
        A nested model checks its part again, which the outer check already passed.
        """
        if not isinstance(data, dict):
            return data
        limits = (info.context or {}).get("limits") or Limits()
        found = oversized(data, limits)
        if found is None:
            return data
        error = PydanticCustomError(found.type, "{problem}", {"problem": found.message})
        # A ValidationError raised here keeps its location: the message names the argument.
        detail = InitErrorDetails(type=error, loc=found.loc, input=None)
        raise ValidationError.from_exception_data(cls.__name__, [detail])


@dataclass
class WrittenFile:
    """A file a step wrote into the chat's storage (already renamed into place)."""

    name: str
    path: Path
    kind: str  # "xlsx", "csv" or "parquet"
    media_type: str
    size: int
    sha256: str
    rows: int
    columns: list[str]
    sheets: list[str] | None = None


@dataclass
class StepOutput:
    """What a step hands on: the table for the next step, any files it wrote, a JSON result.

    The run writes the final table to a file at the end unless the step that produced it
    already did (``wrote_table``); ``passthrough`` steps (inspect, preview...) hand their
    input on unchanged and neither need nor prevent that final write.
    """

    table: pl.DataFrame | None = None
    files: list[WrittenFile] = field(default_factory=list)
    result: dict[str, Any] | None = None
    message: str = "Step completed successfully"
    wrote_table: bool = False
    passthrough: bool = False


@dataclass(frozen=True)
class WriteOptions:
    """How to write a table: ``format`` defaults to the name's extension, else xlsx."""

    format: Literal["xlsx", "csv", "parquet"] | None = None
    delimiter: str = ","
    encoding: str = "utf-8"
    escape_formulas: bool = True


class StepIO(Protocol):
    """The run's side of a step: where its input comes from and where its outputs go."""

    input_name: str
    dry_run: bool
    limits: Limits

    def load_input(self, sheet: str | None) -> pl.DataFrame: ...

    def load_file(self, name: str, sheet: str | None) -> pl.DataFrame: ...

    def file_names(self) -> list[str]: ...

    def input_sheet_names(self) -> list[str]: ...

    def run_confined(self, job: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...

    def write(
        self,
        sheets: Mapping[str, pl.DataFrame],
        *,
        operation: str,
        name: str | None,
        options: WriteOptions,
        progress: Callable[[float], None],
    ) -> WrittenFile: ...


class ReportFn(Protocol):
    def __call__(self, percent: float, message: str, minor: bool = False, /) -> None: ...


class StepContext:
    """Everything a step may use: inputs, writers, progress and cancellation.

    Built by the run's pipeline; operations must not reach past it.  Writes report progress
    into the step's range [75, 99] and are cancellation points.
    """

    def __init__(
        self,
        *,
        io: StepIO,
        operation: str,
        report: ReportFn,
        check_cancelled: Callable[[], None],
    ) -> None:
        self._io = io
        self._operation = operation
        self._report = report
        self._check_cancelled = check_cancelled

    @property
    def input_name(self) -> str:
        return self._io.input_name

    @property
    def input_stem(self) -> str:
        """The input's name without its extension, the start of names derived from it."""
        return PurePosixPath(self._io.input_name).stem

    @property
    def limits(self) -> Limits:
        """The bounds this step must keep (rows it may produce, argument sizes)."""
        return self._io.limits

    @property
    def dry_run(self) -> bool:
        """True when validating on a sample: writes are simulated, nothing is stored."""
        return self._io.dry_run

    def read_input(self, sheet: str | None = None) -> pl.DataFrame:
        """The previous step's table, or the run's input file (``sheet`` picks an xlsx sheet)."""
        return self._io.load_input(sheet)

    def read_file(self, name: str, sheet: str | None = None) -> pl.DataFrame:
        """Another file of the chat by name (its latest version); StepFailed if there is none."""
        return self._io.load_file(name, sheet)

    def file_names(self) -> list[str]:
        """Names of the chat's files, for messages and validation."""
        return self._io.file_names()

    def sheet_names(self) -> list[str]:
        """The sheet names of the run's input file, in order; [] for csv."""
        return self._io.input_sheet_names()

    def run_confined(self, job: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``job(*args, **kwargs)`` in a sealed process that can open no file (excel/sql)."""
        return self._io.run_confined(job, *args, **kwargs)

    def write_table(
        self,
        table: pl.DataFrame,
        *,
        name: str | None = None,
        sheet: str | None = None,
        options: WriteOptions | None = None,
    ) -> WrittenFile:
        """Write ``table`` as a new output file; ``name`` defaults to one derived from the input."""
        return self.write_workbook({sheet or "Sheet1": table}, name=name, options=options)

    def write_workbook(
        self,
        sheets: Mapping[str, pl.DataFrame],
        *,
        name: str | None = None,
        options: WriteOptions | None = None,
    ) -> WrittenFile:
        """Write several tables as the sheets of one xlsx (csv/parquet take exactly one)."""
        self._check_cancelled()

        def progress(fraction: float) -> None:
            self.report(75 + 24 * fraction, f"Writing ({fraction:.0%})", minor=True)

        return self._io.write(
            sheets,
            operation=self._operation,
            name=name,
            options=options or WriteOptions(),
            progress=progress,
        )

    def report(self, percent: float, message: str, *, minor: bool = False) -> None:
        """Report this step's progress, 0-100; also a cancellation point.

        ``minor`` reports (per chunk of rows) may be dropped to keep the event rate sane.
        """
        self._check_cancelled()
        self._report(percent, message, minor)

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
    summary: str = ""  # the description's first sentence, for the README's table

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
        summary: str = "",
    ) -> Callable[[StepFn[ArgsT]], StepFn[ArgsT]]:
        """Decorator: register ``fn`` as operation ``name``."""

        def decorate(fn: StepFn[ArgsT]) -> StepFn[ArgsT]:
            if name in self._operations:
                raise ValueError(f"operation {name!r} registered twice")
            args.model_validate(example)  # an example that does not validate is a bug
            self._operations[name] = Operation(
                name, description, args, example, fn, input_columns, summary or description
            )
            return fn

        return decorate

    def get(self, name: str) -> Operation[Any] | None:
        return self._operations.get(name)

    def names(self) -> list[str]:
        return list(self._operations)

    def all(self) -> list[Operation[Any]]:
        return list(self._operations.values())


registry = Registry()
