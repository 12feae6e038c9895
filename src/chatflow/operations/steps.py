"""How an operation is declared: its shared arguments, the ``@operation`` decorator and its run.

An operation is one argument model and one function.  Most are a pure ``transform(table,
args) -> Outcome``; the decorator wraps it into the ``run(ctx, args)`` a run calls: report 0
and read the step's table, report 25 and check ``args.needed_columns()`` (the same list the
run checks before it starts), report what it is doing at 50, transform, then at 75 hand the
table on or, with ``output``, write it.  A transform that needs more than the table (the
limits, the input's name or sheets) takes the ``StepContext`` as a third parameter.  A step
that reads other chat files names a ``read(ctx, args) -> (tables, "Read ...")`` that replaces
the reading, and its transform takes what it read; one that writes its table itself says so
in ``Outcome.wrote_table``.  The one step that writes several files and hands its input on
(``writes_itself=True``) is the ``run`` itself, built from ``open_step``.

The catalogue was written in two voices and clients see both, so both are kept: a step with a
``title`` (the table operations) says "Starting: <title>", counts "1 row", and names a file it
wrote in its message; one without says "Starting step execution", counts "1 rows", and names
the file in its result under ``file``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar, get_type_hints

import polars as pl
from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema

from chatflow import filenames
from chatflow.operations.common import plural, require_columns
from chatflow.operations.registry import (
    OperationArgs,
    Registry,
    StepContext,
    StepFn,
    StepOutput,
    WrittenFile,
    registry,
)

_OUTPUT = (
    "Write the result table to a file of this name (xlsx unless the name ends in .csv or "
    ".parquet; an existing name gets a new version). Default: hand the table to the next step; "
    "the run writes the final table once at the end."
)


def _check_file_name(name: str) -> str:
    reason = filenames.problem(name)
    if reason is not None:
        raise ValueError(reason)
    return name


OutputName = Annotated[
    str,
    AfterValidator(_check_file_name),
    # The same rules for documents (OpenAPI), exact for ASCII names; checked by the validator.
    WithJsonSchema(
        {
            "type": "string",
            "pattern": filenames.NAME_PATTERN,
            "maxLength": filenames.MAX_NAME_LENGTH,
        }
    ),
]
"""A chat file name given in arguments, refused at validation time if it is not acceptable."""

SheetArg = Annotated[
    str | None,
    Field(
        description=(
            "Read this sheet of the run's input xlsx instead of the table the previous step "
            "handed on (default: that table, or the input's first sheet in a first step)."
        )
    ),
]
OutputArg = Annotated[OutputName | None, Field(description=_OUTPUT)]


def _declared_order(schema: dict[str, Any], model: type[Any]) -> None:
    """List an operation's own arguments first, as declared, and the inherited ``sheet`` and
    ``output`` last unless the model declares them itself: clients show them in this order."""
    fields: dict[str, Any] = model.model_fields
    order: list[str] = []
    for klass in reversed(model.__mro__):
        if klass in (SheetArgs, TableArgs):
            continue
        order += [n for n in vars(klass).get("__annotations__", {}) if n in fields]
    order += list(fields)
    aliases = [fields[n].alias or n for n in dict.fromkeys(order)]
    properties = schema.get("properties", {})
    schema["properties"] = {a: properties[a] for a in aliases if a in properties}


class SheetArgs(OperationArgs):
    """Arguments of a step that reads one table: ``sheet``, and the columns it needs."""

    model_config = ConfigDict(json_schema_extra=_declared_order)

    sheet: SheetArg = None

    def needed_columns(self) -> list[str]:
        """Input columns the step needs: checked before the run starts and when it reads."""
        return []


class TableArgs(SheetArgs):
    """Arguments of a step that makes a table: ``SheetArgs`` and where the table goes."""

    output: OutputArg = None


Doing = Callable[[Any, Any], str]
"""What a step says it is doing at 50, from its table (or what it read) and arguments."""

Read = Callable[[StepContext, Any], tuple[Any, str]]
"""Reads a step's tables from its context and arguments; says what it read at 25."""


@dataclass
class Outcome:
    """What a transform produced: the table, counts for ``result``, a summary line, and any
    files it wrote already (listed before the table's own file); ``wrote_table`` when one of
    them is the table itself, which is then neither handed on unwritten nor written again."""

    table: pl.DataFrame
    message: str
    result: dict[str, Any] = field(default_factory=dict)
    files: list[WrittenFile] = field(default_factory=list)
    wrote_table: bool = False


def _rows(n: int, title: str | None) -> str:
    return plural(n, "row") if title else f"{n} rows"


def open_step(
    ctx: StepContext, sheet: str | None, *, needed: Sequence[str] = (), title: str | None = None
) -> pl.DataFrame:
    """Report 0, read the step's table, report 25 and check the ``needed`` columns."""
    ctx.report(0, f"Starting: {title}" if title else "Starting step execution")
    df = ctx.read_input(sheet)
    ctx.report(25, f"Read {_rows(df.height, title)}")
    require_columns(df.columns, needed)  # fail before claiming to process anything
    return df


def finish(
    ctx: StepContext, outcome: Outcome, *, output: str | None, title: str | None = None
) -> StepOutput:
    """Hand the table on, or write it first (report 75 either way, unless the transform wrote
    the table itself)."""
    table, rows = outcome.table, _rows(outcome.table.height, title)
    if outcome.wrote_table:
        return StepOutput(
            table=table,
            files=outcome.files,
            result=outcome.result,
            message=outcome.message,
            wrote_table=True,
        )
    if output is None:
        ctx.report(75, f"Handing on {rows}")
        return StepOutput(
            table=table, files=outcome.files, result=outcome.result, message=outcome.message
        )
    ctx.report(75, f"Writing {rows}" if title else f"Writing {rows} to {output}")
    written = ctx.write_table(table, name=output)
    return StepOutput(
        table=table,
        files=[*outcome.files, written],
        result=outcome.result if title else {**outcome.result, "file": written.name},
        message=f"{outcome.message}; wrote {written.name}" if title else outcome.message,
        wrote_table=True,
    )


def _look(
    ctx: StepContext,
    args: SheetArgs,
    doing: Doing,
    look: Callable[[pl.DataFrame], Outcome],
    returning: str,
) -> StepOutput:
    """A step that only looks at a table: its ``result`` describes it, the chain's table goes
    on unchanged (even when the step looked at another sheet of the input)."""
    ctx.report(0, "Starting step execution")
    df = ctx.read_input(args.sheet)
    handed_on = df if args.sheet is None else ctx.read_input(None)
    ctx.report(25, f"Read {df.height} rows")
    require_columns(df.columns, args.needed_columns())
    ctx.report(50, doing(df, args))
    outcome = look(df)
    ctx.report(75, returning)
    return StepOutput(
        table=handed_on, result=outcome.result, message=outcome.message, passthrough=True
    )


def docstring_paragraphs(fn: Callable[..., Any], facts: Mapping[str, object] | None) -> list[str]:
    """The docstring's paragraphs, each with its line breaks joined by single spaces; ``{name}``
    fields are filled from ``facts`` when given (limits the text quotes)."""
    doc = inspect.cleandoc(fn.__doc__ or "")
    paragraphs = [" ".join(p.split()) for p in doc.split("\n\n") if p.strip()]
    return [p.format(**facts) for p in paragraphs] if facts else paragraphs


F = TypeVar("F", bound=Callable[..., Any])


def operation(
    name: str,
    *,
    example: dict[str, Any],
    doing: Doing | None = None,
    title: str | None = None,
    returning: str | None = None,
    read: Read | None = None,
    writes_itself: bool = False,
    facts: Mapping[str, object] | None = None,
    into: Registry = registry,
) -> Callable[[F], F]:
    """Register the decorated function as operation ``name``; its docstring describes it
    (the first paragraph is the summary in the README's table).

    ``doing(table, args)`` says what happens at 50; ``title`` picks the table operations'
    voice and counts ``rows_in``/``rows_out``; ``returning`` makes it a look that hands its
    input on unchanged and says this at 75; ``read`` replaces reading the step's table.  The
    function is returned unchanged.
    """

    def decorate(fn: F) -> F:
        if writes_itself:
            run: StepFn[Any] = fn
        elif doing is None:
            raise TypeError(f"operation {name!r}: a transform says what it is doing (doing=...)")
        else:
            run = _runner(fn, doing, title, returning, read)
        args_model = get_type_hints(fn)["args"]
        needed = getattr(args_model, "needed_columns", None)
        paragraphs = docstring_paragraphs(fn, facts)
        into.register(
            name,
            description=" ".join(paragraphs),
            summary=paragraphs[0].removesuffix(".") if paragraphs else "",
            args=args_model,
            example=example,
            input_columns=needed,
        )(run)
        return fn

    return decorate


def _runner(
    transform: Callable[..., Outcome],
    say: Doing,
    title: str | None,
    returning: str | None,
    read: Read | None,
) -> Callable[[StepContext, Any], StepOutput]:
    """The ``run(ctx, args)`` around a transform (see the module docstring)."""
    wants_context = len(inspect.signature(transform).parameters) == 3

    def run(ctx: StepContext, args: Any) -> StepOutput:
        def apply(df: pl.DataFrame) -> Outcome:
            outcome = transform(df, args, ctx) if wants_context else transform(df, args)
            if not title:
                return outcome
            counts = {"rows_in": df.height, "rows_out": outcome.table.height}
            outcome.result = {**counts, **outcome.result}
            return outcome

        if returning is not None:
            return _look(ctx, args, say, apply, returning)
        if read is not None:
            ctx.report(0, "Starting step execution")
            tables, said = read(ctx, args)
            ctx.report(25, said)
            ctx.report(50, say(tables, args))
            return finish(ctx, apply(tables), output=args.output)
        df = open_step(ctx, args.sheet, needed=args.needed_columns(), title=title)
        ctx.report(50, say(df, args))
        return finish(ctx, apply(df), output=args.output, title=title)

    return run
