"""excel/split-file and excel/convert: steps that write the table to files of their own.

Both hand their input on and write files of their own.  convert's transform takes the
``StepContext`` to write the table with its csv options (``Outcome.wrote_table``).  split-file
is not a transform: it writes several files (or sheets) named from the values, says how many
parts there are before it writes them, and hands on the table it split, so it is its own
``run`` (``writes_itself=True``), built from ``open_step``."""

from __future__ import annotations

import math
import re
import unicodedata
from pathlib import PurePosixPath
from typing import Any, Literal

import polars as pl
from pydantic import ConfigDict, Field, field_validator, model_validator

from chatflow import filenames
from chatflow.failures import StepFailed
from chatflow.operations.common import require_columns
from chatflow.operations.registry import (
    INPUT_COLUMNS,
    StepContext,
    StepOutput,
    WriteOptions,
    WrittenFile,
)
from chatflow.operations.steps import Outcome, OutputName, TableArgs, open_step, operation
from chatflow.spreadsheets.cell_types import cell_text
from chatflow.spreadsheets.writing import excel_sheet_name

_OUTPUT_EXTENSIONS = {".xlsx": "xlsx", ".csv": "csv", ".parquet": "parquet"}

# --- excel/split-file ---------------------------------------------------------------------

MAX_GROUPS = 200
_VALUE_CHARS = 80
_UNSAFE_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|\u202a-\u202e\u2066-\u2069]")
_BLANK = "(blank)"


class SplitFileArgs(TableArgs):
    """Arguments of excel/split-file."""

    model_config = ConfigDict(extra="forbid", serialize_by_alias=True)

    by: Literal["column", "row_count"] = Field(
        description="Split into one part per distinct value of `column`, or into consecutive "
        "chunks of `rows` rows."
    )
    column: str | None = Field(
        default=None,
        description="With by='column': the column whose values define the parts (parts come in "
        "order of first appearance; empty cells form a part named '(blank)').",
        json_schema_extra=INPUT_COLUMNS,
    )
    rows: int | None = Field(
        default=None,
        ge=1,
        description="With by='row_count': rows per part (the last may be shorter).",
    )
    as_: Literal["files", "sheets"] = Field(
        default="files",
        alias="as",
        description="'files': one file per part, named <prefix>_<value> (or <prefix>_part<N>); "
        "'sheets': one xlsx workbook with a sheet per part, named after the value (or part<N>), "
        "made valid for Excel (31 characters, no []:*?/\\).",
    )
    name_prefix: str | None = Field(
        default=None,
        max_length=100,
        description="With as='files': start of every file name (default: the input's name "
        "without extension). Characters not allowed in file names become '_' (so do "
        "invisible and control characters in the values); invisible or control characters "
        "in the prefix itself are refused.",
    )
    format: Literal["xlsx", "csv", "parquet"] = Field(
        default="xlsx",
        description="With as='files': the format of every part (csv is UTF-8, comma-separated, "
        "formula-like text escaped). A workbook of sheets is always xlsx.",
    )
    output: OutputName | None = Field(
        default=None,
        description="With as='sheets': the workbook's file name (default: derived from the "
        "input's name).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> SplitFileArgs:
        if self.by == "column" and (self.column is None or self.rows is not None):
            raise ValueError("by='column' needs 'column' and takes no 'rows'")
        if self.by == "row_count" and (self.rows is None or self.column is not None):
            raise ValueError("by='row_count' needs 'rows' and takes no 'column'")
        if self.as_ == "files" and self.output is not None:
            raise ValueError("'output' names the workbook of as='sheets'; use 'name_prefix'")
        if self.as_ == "sheets" and (self.name_prefix is not None or self.format != "xlsx"):
            raise ValueError("as='sheets' writes one xlsx workbook: use 'output' to name it")
        if self.name_prefix is not None and not _safe_part(self.name_prefix):
            raise ValueError("name_prefix has no usable characters")
        return self

    def needed_columns(self) -> list[str]:
        return [self.column] if self.column else []

    @field_validator("name_prefix")
    @classmethod
    def _visible_prefix(cls, prefix: str | None) -> str | None:
        hidden = filenames.first_hidden(prefix or "")
        if hidden is not None:
            raise ValueError(f"must not contain {filenames.describe_char(hidden)}")
        return prefix


def _safe_part(text: str) -> str:
    """``text`` usable inside a file name: unsafe characters -> '_', no edge spaces or dots.

    Cell values may carry invisible characters (``filenames.scrub``): those become '_' too
    rather than failing the step, so a part's name shows every character it has."""
    text = filenames.scrub(unicodedata.normalize("NFKC", text))
    text = _UNSAFE_NAME_CHARS.sub("_", text).strip().strip(".").strip()
    return text[:_VALUE_CHARS]


def part_file_names(labels: list[str], prefix: str, extension: str) -> list[str]:
    """One acceptable, distinct (also ignoring case) file name per part label."""
    taken: set[str] = set()
    names = []
    for index, label in enumerate(labels, start=1):
        stem = f"{prefix}_{_safe_part(label) or f'part{index}'}"
        if filenames.problem(stem + extension) is not None:
            stem = f"{prefix}_part{index}"
        candidate, n = stem, 1
        while candidate.casefold() in taken:
            n += 1
            candidate = f"{stem}_{n}"
        taken.add(candidate.casefold())
        names.append(candidate + extension)
    return names


def part_sheet_names(labels: list[str]) -> list[str]:
    """Distinct Excel-valid sheet names, made the way the workbook writer would make them."""
    taken: set[str] = set()
    names = []
    for label in labels:
        name = base = excel_sheet_name(label)
        n = 1
        while name.casefold() in taken:
            n += 1
            name = f"{base[: 31 - len(str(n)) - 1]}_{n}"
        taken.add(name.casefold())
        names.append(name)
    return names


def split_table(
    df: pl.DataFrame, *, column: str | None, rows: int | None
) -> list[tuple[str, pl.DataFrame]]:
    """(label, part) pairs in order; StepFailed ``too_many_groups`` past MAX_GROUPS."""
    if column is not None:
        require_columns(df.columns, [column])
        groups = df.select(pl.col(column).n_unique()).item() if df.height else 0
        _check_groups(groups)
        parts = df.partition_by(column, maintain_order=True, include_key=True)
        labels = []
        for part in parts:
            value = part[column][0]
            text = "" if value is None else cell_text(value)
            labels.append(text if text.strip() else _BLANK)
        return list(zip(labels, parts, strict=True))
    assert rows is not None
    count = math.ceil(df.height / rows)
    _check_groups(count)
    width = len(str(count))
    return [(f"part{i + 1:0{width}d}", df.slice(i * rows, rows)) for i in range(count)]


def _check_groups(count: int) -> None:
    if count > MAX_GROUPS:
        raise StepFailed(
            "too_many_groups",
            f"Splitting would make {count} parts; at most {MAX_GROUPS} are allowed.",
            details={"groups": count, "max": MAX_GROUPS},
        )


@operation(
    "excel/split-file",
    example={"by": "column", "column": "region", "as": "files"},
    writes_itself=True,
    facts={"MAX_GROUPS": MAX_GROUPS},
)
def split_file(ctx: StepContext, args: SplitFileArgs) -> StepOutput:
    """Split the table into parts, by the values of a column or by a number of rows, and write each
    part as its own file or as a sheet of one workbook.

    The table is handed on unchanged. At most {MAX_GROUPS} parts; an empty table writes nothing.
    A column of any type can split: numbers group as numbers and name their parts by their text
    form (120, 3.5), dates ISO (2024-01-31), booleans true/false. Every part keeps the columns'
    types (number, date and boolean cells in xlsx, numbers without '.0' in csv, typed parquet)."""
    df = open_step(ctx, args.sheet, needed=args.needed_columns())
    parts = split_table(df, column=args.column, rows=args.rows)
    ctx.report(50, f"Splitting {df.height} rows into {len(parts)} parts")
    labels = [label for label, _ in parts]
    files: list[WrittenFile] = []
    described: list[dict[str, Any]] = []
    if not parts:
        pass
    elif args.as_ == "sheets":
        sheet_names = part_sheet_names(labels)
        ctx.report(75, f"Writing a workbook of {len(parts)} sheets")
        files.append(
            ctx.write_workbook(
                {name: part for name, (_, part) in zip(sheet_names, parts, strict=True)},
                name=args.output,
            )
        )
        described = [
            {"value": label, "sheet": name, "rows": part.height}
            for name, (label, part) in zip(sheet_names, parts, strict=True)
        ]
    else:
        prefix = _safe_part(args.name_prefix or ctx.input_stem) or "part"
        names = part_file_names(labels, prefix, f".{args.format}")
        options = WriteOptions(format=args.format)
        ctx.report(75, f"Writing {len(parts)} files")
        for name, (label, part) in zip(names, parts, strict=True):
            written = ctx.write_table(part, name=name, options=options)
            files.append(written)
            described.append({"value": label, "file": written.name, "rows": part.height})
    result = {
        "rows_in": df.height,
        "groups": len(parts),
        "files": [item.name for item in files],
        "parts": described,
    }
    where = f"{len(files)} files" if args.as_ == "files" else f"{len(parts)} sheets"
    return StepOutput(
        table=df,
        files=files,
        result=result,
        message=f"Split {df.height} rows into {where}" if parts else "Nothing to split: no rows",
        passthrough=True,
    )


# --- excel/convert ------------------------------------------------------------------------


class ConvertArgs(TableArgs):
    """Arguments of excel/convert."""

    format: Literal["xlsx", "csv", "parquet"] = Field(description="The file format to write.")
    delimiter: Literal[",", ";", "\t", "|"] | None = Field(
        default=None,
        description="csv only: the field separator (default ','). Limited to the separators "
        "chatflow itself detects when reading csv.",
    )
    encoding: Literal["utf-8", "utf-8-sig", "cp1252", "latin-1", "iso-8859-15"] | None = Field(
        default=None,
        description="csv only: the text encoding (default utf-8 without BOM; utf-8-sig adds the "
        "BOM older Excel versions need). Text the encoding cannot hold fails the step "
        "(unencodable_text).",
    )
    escape_formulas: bool = Field(
        default=True,
        description="csv only: prefix header and text cells starting with = @ + - (or a "
        "tab/CR/LF) with an apostrophe so spreadsheet programs do not run them as formulas; "
        "signed numbers (-14, -1,5, -5%, -1.234,56) and phone numbers (+49 30 1234567) are "
        "left alone (the exact rule: README, csv output). xlsx cells are always inert text.",
    )
    output: OutputName | None = Field(
        default=None,
        description="File name (default: derived from the input's name); an extension other "
        "than the format's is refused, a missing one is added.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ConvertArgs:
        if self.format != "csv" and (
            self.delimiter is not None or self.encoding is not None or not self.escape_formulas
        ):
            raise ValueError("delimiter, encoding and escape_formulas apply to format='csv' only")
        if self.output is not None:
            kind = _OUTPUT_EXTENSIONS.get(PurePosixPath(self.output).suffix.lower())
            if kind is not None and kind != self.format:
                raise ValueError(f"output {self.output!r} does not end in .{self.format}")
        return self


@operation(
    "excel/convert",
    example={"format": "csv", "delimiter": ";", "encoding": "utf-8-sig"},
    doing=lambda df, args: f"Converting {df.height} rows to {args.format}",
)
def convert(df: pl.DataFrame, args: ConvertArgs, ctx: StepContext) -> Outcome:
    """Write the table as an xlsx, csv or parquet file (csv with a chosen separator and encoding,
    formula-like text escaped).

    The table is handed on unchanged. Columns keep their types: xlsx gets number, boolean and
    date cells (text stays text cells, '01234' included); csv writes numbers in shortest form
    without '.0' (120, 3.5), dates ISO and booleans true/false; parquet keeps each column's
    type."""
    options = WriteOptions(
        format=args.format,
        delimiter=args.delimiter or ",",
        encoding=args.encoding or "utf-8",
        escape_formulas=args.escape_formulas,
    )
    ctx.report(75, f"Writing {df.height} rows as {args.format}")
    written = ctx.write_table(df, name=args.output, options=options)
    result = {"format": args.format, "rows": df.height, "columns": df.width, "file": written.name}
    return Outcome(df, f"Wrote {written.name}", result, [written], wrote_table=True)
