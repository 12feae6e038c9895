"""The Rust engine's chunked write (issue 15): the same file as the single call, progress per
chunk, a stop between chunks that leaves nothing behind."""

from __future__ import annotations

import datetime as dt
import io
import math
import zipfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import fastexcel
import openpyxl
import polars as pl
import pytest
import rustpy_xlsxwriter

from chatflow.failures import Cancelled
from chatflow.spreadsheets import writing_chunks, writing_rust
from chatflow.spreadsheets.writing import RUST_ENGINE, write_workbook
from chatflow.spreadsheets.writing_chunks import ChunkedWorkbook


def _every_kind(rows: int) -> pl.DataFrame:
    """Every kind of column, nulls in each, mixed columns, and rows at the end that write no
    cell (null, or empty text), which the sheet's dimension must leave out."""
    n = pl.int_range(0, rows, eager=True)
    frame = pl.DataFrame(
        {
            "int": n * 7 - 20,
            "float": n.cast(pl.Float64) / 3,
            "code": n.cast(pl.String).str.zfill(6),
            "ok": n % 3 == 0,
            "day": pl.date_range(dt.date(1899, 12, 25), dt.date(2100, 1, 1), eager=True)[:rows],
            "at": pl.datetime_range(
                dt.datetime(1900, 3, 1, 6), dt.datetime(2100, 1, 1), "7h", eager=True
            )[:rows],
            "ratio": [math.nan if i % 5 == 0 else i / 7 for i in range(rows)],  # numbers + text
            "big": [2**60 if i % 4 == 0 else i for i in range(rows)],  # numbers + text
            "": [None] * rows,
        }
    ).with_columns(
        pl.when(n % 4 == 1).then(None).otherwise(pl.all()).name.keep(),
    )
    blank = {name: [None, None] for name in frame.columns} | {"code": ["", None]}
    return pl.concat([frame, pl.DataFrame(blank, schema=frame.schema)])


def _sheets() -> dict[str, pl.DataFrame]:
    return {
        "Every kind": _every_kind(23),
        "Dates only": pl.DataFrame({"d": [dt.date(2024, 1, i) for i in range(1, 11)]}),
        "Empty": _every_kind(3).head(0),
        "No columns": pl.DataFrame(),
        "Tail": pl.DataFrame({"t": ["x", "", None]}),
    }


def _parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        # core.xml holds the time of writing.
        return {n: archive.read(n) for n in archive.namelist() if n != "docProps/core.xml"}


def _cells(path: Path) -> dict[str, list[list[tuple[Any, str, str, bool]]]]:
    book = openpyxl.load_workbook(path)
    return {
        ws.title: [
            [(c.value, c.data_type, c.number_format, bool(c.font.b)) for c in row]
            for row in ws.iter_rows()
        ]
        for ws in book.worksheets
    }


class _Calls:
    """Counts the library calls, and the chunks the workbook joins."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.library = self.joined = 0
        real_write, real_add = writing_rust._library_write, ChunkedWorkbook.add

        def counted(*args: Any, **kwargs: Any) -> None:
            self.library += 1
            real_write(*args, **kwargs)

        def added(*args: Any, **kwargs: Any) -> None:
            self.joined += 1
            real_add(*args, **kwargs)

        monkeypatch.setattr(writing_rust, "_library_write", counted)
        monkeypatch.setattr(ChunkedWorkbook, "add", added)


@pytest.mark.parametrize("chunk_rows", [1, 3, 7, 24])
def test_the_chunked_write_gives_the_single_calls_file(chunk_rows: int, tmp_path: Path) -> None:
    sheets = _sheets()
    whole, chunked = tmp_path / "whole.xlsx", tmp_path / "chunked.xlsx"
    write_workbook(sheets, whole, engine=RUST_ENGINE)
    write_workbook(sheets, chunked, engine=RUST_ENGINE, chunk_rows=chunk_rows)
    # Values, cell types, number formats and the bold header, as openpyxl reads them ...
    cells = _cells(chunked)
    assert cells == _cells(whole)
    assert list(cells) == list(sheets)
    header, first, second = cells["Every kind"][:3]
    assert all(bold and kind == "s" for _, kind, _, bold in header[:-1])
    assert header[-1] == (None, "n", "General", True)  # the column named ""
    assert first == [
        (-20, "n", "General", False),
        (0.0, "n", "General", False),
        ("000000", "s", "General", False),
        (True, "b", "General", False),
        ("1899-12-25", "s", "yyyy-mm-dd", False),
        (dt.datetime(1900, 3, 1, 6), "d", "yyyy-mm-dd hh:mm:ss", False),
        ("nan", "s", "General", False),
        (str(2**60), "s", "General", False),
        (None, "n", "General", False),
    ]
    assert [value for value, *_ in second] == [None] * 9  # the nulls of row 1
    # The last row with cells; the two after it have none, so openpyxl sees no row.
    assert len(cells["Every kind"]) == 1 + 23
    assert cells["Every kind"][-1][2][0] == "000022"
    # ... and part for part the same bytes, each well-formed XML.
    parts = _parts(chunked)
    assert parts == _parts(whole)
    for name, data in parts.items():
        if name.endswith((".xml", ".rels")):
            ElementTree.fromstring(data)
    assert b'<dimension ref="I1:' not in parts["xl/worksheets/sheet1.xml"]
    assert b'<dimension ref="A1:I24"/>' in parts["xl/worksheets/sheet1.xml"]
    # fastexcel (the service's reader) agrees too.
    for name in ("Every kind", "Dates only", "Tail"):
        read = [fastexcel.read_excel(p).load_sheet(name).to_polars() for p in (whole, chunked)]
        assert read[0].equals(read[1], null_equal=True)


@pytest.mark.parametrize("piece", [150, 300, 1000])
def test_sheet_xml_streamed_in_small_pieces_gives_the_same_bytes(
    piece: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pieces of a few rows: the head, the repeated header and the tail each span pieces.
    monkeypatch.setattr(writing_chunks, "_PIECE", piece)
    monkeypatch.setattr(writing_chunks, "_HOLD", 140)  # the tail is 112 bytes
    sheets = {"A": _every_kind(60), "B": _every_kind(5)}
    write_workbook(sheets, tmp_path / "whole.xlsx")
    write_workbook(sheets, tmp_path / "chunked.xlsx", chunk_rows=7)
    assert _parts(tmp_path / "chunked.xlsx") == _parts(tmp_path / "whole.xlsx")


def test_chunks_report_increasing_progress_one_step_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _Calls(monkeypatch)
    seen: list[float] = []
    sheets = {"A": _every_kind(40), "B": _every_kind(9)}
    write_workbook(sheets, tmp_path / "out.xlsx", progress=seen.append, chunk_rows=5)
    chunks = 9 + 3  # 42 and 11 rows, the two without cells included
    assert calls.library == calls.joined == chunks
    prepared = 2 * 9  # one report per column of each sheet
    assert len(seen) == prepared + 2 * chunks + 1  # after each call and each join; 1.0 at the end
    assert all(a < b for a, b in zip(seen, seen[1:-1], strict=False))
    assert seen[-2:] == [1.0, 1.0]
    # The fraction is of the work done: sheet A's chunks weigh their 5 x 9 cells each.
    assert 0.05 < seen[prepared] < seen[prepared + 1] < 0.15


def test_a_raising_progress_stops_between_chunks_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _Calls(monkeypatch)
    seen: list[float] = []

    def cancel_halfway(fraction: float) -> None:
        seen.append(fraction)
        if fraction > 0.5:
            raise Cancelled()

    dest = tmp_path / "no.xlsx"
    with pytest.raises(Cancelled):
        write_workbook({"A": _every_kind(100)}, dest, progress=cancel_halfway, chunk_rows=5)
    assert 0.5 < seen[-1] < 0.6
    # 21 chunks: it stopped at the report after chunk 10's library call (52% of the work),
    # before joining it; of the library calls only chunk 11's, written ahead and left to
    # finish in its thread, may have begun since.
    assert calls.joined == 9
    assert calls.library in (10, 11)
    assert list(tmp_path.iterdir()) == []


def test_only_a_workbook_past_the_threshold_is_written_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writing_rust, "CHUNKED_ABOVE_CELLS", 20)
    monkeypatch.setattr(writing_rust, "CHUNK_CELLS", 10)
    calls = _Calls(monkeypatch)
    at_most = {"S": pl.DataFrame({"a": range(10), "b": range(10)})}
    write_workbook(at_most, tmp_path / "one.xlsx")
    assert calls.library == 1
    above = {"S": pl.DataFrame({"a": range(11), "b": range(11)})}
    write_workbook(above, tmp_path / "chunks.xlsx")
    assert calls.library == 1 + 3  # 5 rows of 2 cells each
    assert _parts(tmp_path / "chunks.xlsx") == _parts(tmp_path / "one.xlsx") | _parts(
        tmp_path / "chunks.xlsx"
    )
    rows = list(openpyxl.load_workbook(tmp_path / "chunks.xlsx").active.values)
    assert rows == [("a", "b"), *((float(i), float(i)) for i in range(11))]


def test_a_sheet_part_estimated_past_512_mib_gets_zip64_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writing_chunks, "_ZIP64_ESTIMATE", 0)
    dest = tmp_path / "zip64.xlsx"
    write_workbook({"S": _every_kind(30)}, dest, chunk_rows=4)
    with zipfile.ZipFile(dest) as archive:
        part = archive.getinfo("xl/worksheets/sheet1.xml")
        assert part.extract_version >= zipfile.ZIP64_VERSION
    whole = tmp_path / "whole.xlsx"
    write_workbook({"S": _every_kind(30)}, whole)
    assert _cells(dest) == _cells(whole)


def test_chunks_with_different_styles_are_refused(tmp_path: Path) -> None:
    def chunk(formats: dict[str, Any] | None) -> io.BytesIO:
        buffer = io.BytesIO()
        frame = pl.DataFrame({"d": [1.0, 2.0]})
        rustpy_xlsxwriter.write_worksheets([("S", frame)], buffer, column_formats=formats)
        return buffer

    book = ChunkedWorkbook(tmp_path / "out.xlsx")
    book.add(chunk(None), 0, header_row=0, last=False, dimension="A1:A5", chunks=2)
    dated = {"S": {"d": rustpy_xlsxwriter.Format().set_num_format("yyyy-mm-dd")}}
    with pytest.raises(RuntimeError, match="different styles"):
        book.add(chunk(dated), 0, header_row=2, last=True, dimension="A1:A5", chunks=2)
    book.abort()
