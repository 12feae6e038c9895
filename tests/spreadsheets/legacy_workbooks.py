"""Real .xls, .ods and .xlsx files, written by LibreOffice from one typed table.

The table (``SHEETS``) is written here as a flat OpenDocument spreadsheet (.fods: one XML file
with explicit cell types and number formats), then LibreOffice saves it as xls (filter "MS Excel
97"), ods and xlsx, with the filters ``soffice --convert-to`` picks, and as encrypted xls and
ods.  One Basic macro put in the private LibreOffice profile does all five in one start-up
(``--convert-to`` takes one format a start, and cannot set a password: its filter options, JSON
included, never reach the document's ``Password``): it loads the table and stores it with
``FilterName``, and ``Password`` for the encrypted copies, which is what File > Save As (with a
password) does.  Its xlsx is byte for byte the one ``--convert-to xlsx`` writes.

The table holds whole and decimal numbers, text that reads like a number (``01234``, ``007``,
``0``), booleans (cells with a boolean number format, as Calc keeps them), dates, date-times,
times, a percentage and a currency column, an error cell (``=1/0``), empty cells, a wholly
empty row, and three sheets.  ``EXPECTED`` is what the service must read from each file: the
same columns, types and values whatever the format.

``build`` runs LibreOffice in its own process group with a private profile and a time limit,
killing the whole group if it overruns.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from tests.support import group_alive, kill_group

PASSWORD = "legacy-fixture"
CONVERT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Error:
    """A cell holding a formula whose result is an error."""

    formula: str
    shown: str


D, DT, T = dt.date, dt.datetime, dt.time
DATA_HEADER = [
    "id", "amount", "code", "flag", "day", "stamp", "clock", "share", "price", "ratio", "note",
]  # fmt: skip
# Column kinds that need a number format (the rest follow from the Python value).
_FORMATTED = {"share": "percentage", "price": "currency"}
DATA_ROWS: list[list[Any]] = [
    [1, 2.5, "01234", True, D(2024, 2, 29), DT(2024, 1, 2, 3, 4, 5), T(13, 30), 0.125, 1234.5,
     0.5, "hello"],
    [2, -0.1, "007", False, D(1999, 12, 31), DT(1999, 12, 31, 23, 59, 59), T(0, 0, 1), 0.5,
     -3.25, Error("of:=1/0", "#DIV/0!"), None],
    [None] * 11,
    [3, 1e20, "A-1", None, D(1900, 3, 1), DT(2038, 1, 19, 3, 14, 7), T(23, 59, 59), 1.0, 0.0,
     2.0, "ü ✓ 😀"],
    [4, 1234.5678, "0", True, D(2038, 1, 19), DT(2024, 2, 29), T(12, 0), 0.25, 99.99, 0.25,
     "x"],
]  # fmt: skip
SHEETS: dict[str, list[list[Any]]] = {
    "Data": [DATA_HEADER, *DATA_ROWS],
    "Second": [["key", "value"], ["a", 10], ["b", 20]],
    "Notes": [["note"], ["only text here"]],
}
# What every format must read: column -> (type, values as JSON), the empty row dropped.
EXPECTED: dict[str, tuple[str, list[Any]]] = {
    "id": ("integer", [1, 2, 3, 4]),
    "amount": ("float", [2.5, -0.1, 1e20, 1234.5678]),
    "code": ("text", ["01234", "007", "A-1", "0"]),
    "flag": ("boolean", [True, False, None, True]),
    "day": ("date", ["2024-02-29", "1999-12-31", "1900-03-01", "2038-01-19"]),
    "stamp": (
        "datetime",
        [
            "2024-01-02T03:04:05",
            "1999-12-31T23:59:59",
            "2038-01-19T03:14:07",
            "2024-02-29T00:00:00",
        ],
    ),
    "clock": ("time", ["13:30:00", "00:00:01", "23:59:59", "12:00:00"]),
    "share": ("float", [0.125, 0.5, 1.0, 0.25]),
    "price": ("float", [1234.5, -3.25, 0.0, 99.99]),
    "ratio": ("float", [0.5, None, 2.0, 0.25]),
    "note": ("text", ["hello", None, "ü ✓ 😀", "x"]),
}

_NAMESPACES = " ".join(
    f'xmlns:{prefix}="{uri}"'
    for prefix, uri in {
        "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
        "style": "urn:oasis:names:tc:opendocument:xmlns:style:1.0",
        "number": "urn:oasis:names:tc:opendocument:xmlns:datastyle:1.0",
        "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
        "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
        "of": "urn:oasis:names:tc:opendocument:xmlns:of:1.2",
        "calcext": "urn:org:documentfoundation:names:experimental:calc:xmlns:calcext:1.0",
    }.items()
)
_YMD = (
    '<number:year number:style="long"/><number:text>-</number:text>'
    '<number:month number:style="long"/><number:text>-</number:text>'
    '<number:day number:style="long"/>'
)
_HMS = (
    '<number:hours number:style="long"/><number:text>:</number:text>'
    '<number:minutes number:style="long"/><number:text>:</number:text>'
    '<number:seconds number:style="long"/>'
)
_STYLES = f"""<office:automatic-styles>
<number:date-style style:name="Nday">{_YMD}</number:date-style>
<number:date-style style:name="Nstamp">{_YMD}<number:text> </number:text>{_HMS}</number:date-style>
<number:time-style style:name="Nclock">{_HMS}</number:time-style>
<number:boolean-style style:name="Nflag"><number:boolean/></number:boolean-style>
<number:percentage-style style:name="Nshare"><number:number number:decimal-places="2"
 number:min-integer-digits="1"/><number:text>%</number:text></number:percentage-style>
<number:currency-style style:name="Nprice"><number:currency-symbol number:language="de"
 number:country="DE">€</number:currency-symbol><number:text> </number:text><number:number
 number:decimal-places="2" number:min-integer-digits="1" number:grouping="true"/>
</number:currency-style>
{
    "".join(
        f'<style:style style:name="c{n}" style:family="table-cell" style:data-style-name="N{n}"/>'
        for n in ("day", "stamp", "clock", "flag", "share", "price")
    )
}
</office:automatic-styles>"""


def _cell(value: Any, column: str) -> str:
    """One <table:table-cell> holding ``value`` with its ODF value type."""
    if value is None:
        return "<table:table-cell/>"
    attributes, shown = _typed(value, column)
    rendered = " ".join(f"{name}={quoteattr(text)}" for name, text in attributes.items())
    return f"<table:table-cell {rendered}><text:p>{escape(shown)}</text:p></table:table-cell>"


def _typed(value: Any, column: str) -> tuple[dict[str, str], str]:
    """(attributes, shown text) of a cell: the value type, value and number format."""
    if isinstance(value, Error):
        error = {"office:string-value": "", "calcext:value-type": "error"}
        return {"table:formula": value.formula, "office:value-type": "string", **error}, value.shown
    if isinstance(value, str):
        return {"office:value-type": "string"}, value
    if isinstance(value, bool):
        word = "true" if value else "false"
        return {"table:style-name": "cflag", "office:value-type": "boolean",
                "office:boolean-value": word}, word.upper()  # fmt: skip
    if isinstance(value, dt.date):  # datetimes too
        style = "cstamp" if isinstance(value, dt.datetime) else "cday"
        return {"table:style-name": style, "office:value-type": "date",
                "office:date-value": value.isoformat()}, value.isoformat()  # fmt: skip
    if isinstance(value, dt.time):
        duration = f"PT{value.hour:02d}H{value.minute:02d}M{value.second:02d}S"
        return {"table:style-name": "cclock", "office:value-type": "time",
                "office:time-value": duration}, value.isoformat()  # fmt: skip
    kind = _FORMATTED.get(column, "float")
    attributes = {"office:value-type": kind, "office:value": repr(value)}
    if kind != "float":
        attributes["table:style-name"] = f"c{column}"
    if kind == "currency":
        attributes["office:currency"] = "EUR"
    return attributes, str(value)


def write_fods(path: Path, sheets: dict[str, list[list[Any]]] = SHEETS) -> Path:
    """The table as a flat OpenDocument spreadsheet, every cell typed."""
    tables = []
    for name, rows in sheets.items():
        header = rows[0]
        body = "".join(
            "<table:table-row>"
            + "".join(_cell(v, header[i] if i < len(header) else "") for i, v in enumerate(row))
            + "</table:table-row>"
            for row in rows
        )
        tables.append(f"<table:table table:name={quoteattr(name)}>{body}</table:table>")
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<office:document {_NAMESPACES} office:version="1.3" '
        'office:mimetype="application/vnd.oasis.opendocument.spreadsheet">'
        f"{_STYLES}<office:body><office:spreadsheet>{''.join(tables)}"
        "</office:spreadsheet></office:body></office:document>",
        encoding="utf-8",
    )
    return path


# --- LibreOffice ------------------------------------------------------------------------------

# Each file's export filter: those ``soffice --convert-to xls|ods|xlsx`` picks for a spreadsheet.
_FILTERS = {"xls": "MS Excel 97", "ods": "calc8", "xlsx": "Calc MS Excel 2007 XML"}
_ENCRYPTED = ("xls", "ods")  # the formats Calc saves with a password (xlsx: not from Basic)


def _macro(targets: list[tuple[Path, str, bool]]) -> str:
    """A Basic module whose ``SaveAll(source, secret)`` loads ``source`` once and stores it as
    every (path, filter, with the password) of ``targets``."""

    def text(value: str) -> str:  # a Basic string literal, escaped for the XML it sits in
        return escape(f'"{value}"', {'"': "&quot;"})

    stores = "\n".join(
        f"  Store(doc, {text(str(path))}, {text(name)}, {'secret' if locked else text('')})"
        for path, name, locked in targets
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE script:module PUBLIC "-//OpenOffice.org//DTD OfficeDocument 1.0//EN" "module.dtd">
<script:module xmlns:script="http://openoffice.org/2000/script" script:name="Module1"
 script:language="StarBasic">
Sub SaveAll(source As String, secret As String)
  Dim load(0) As New com.sun.star.beans.PropertyValue
  load(0).Name = &quot;Hidden&quot;
  load(0).Value = True
  doc = StarDesktop.loadComponentFromURL(ConvertToURL(source), &quot;_blank&quot;, 0, load())
{stores}
  doc.close(True)
End Sub

Sub Store(doc As Object, target As String, filterName As String, secret As String)
  If secret = &quot;&quot; Then
    Dim plain(0) As New com.sun.star.beans.PropertyValue
    plain(0).Name = &quot;FilterName&quot;
    plain(0).Value = filterName
    doc.storeToURL(ConvertToURL(target), plain())
  Else
    Dim locked(1) As New com.sun.star.beans.PropertyValue
    locked(0).Name = &quot;FilterName&quot;
    locked(0).Value = filterName
    locked(1).Name = &quot;Password&quot;
    locked(1).Value = secret
    doc.storeToURL(ConvertToURL(target), locked())
  End If
End Sub
</script:module>
"""


@dataclass(frozen=True)
class LegacyWorkbooks:
    """The files ``build`` wrote: ``plain[fmt]`` and ``encrypted[fmt]``."""

    plain: dict[str, Path]
    encrypted: dict[str, Path]


def build(folder: Path, soffice: str) -> LegacyWorkbooks:
    """Write the table as .xls, .ods and .xlsx, and encrypted .xls and .ods, into ``folder``:
    one LibreOffice start-up for all five (each start takes about a second)."""
    source = write_fods(folder / "legacy.fods")
    profile = folder / "profile"
    run = _Runner(soffice, profile)
    run(["--terminate_after_init"])  # creates the profile the macro goes into
    plain = {fmt: folder / f"legacy.{fmt}" for fmt in _FILTERS}
    encrypted = {fmt: folder / f"encrypted.{fmt}" for fmt in _ENCRYPTED}
    targets = [(path, _FILTERS[fmt], False) for fmt, path in plain.items()]
    targets += [(path, _FILTERS[fmt], True) for fmt, path in encrypted.items()]
    module = profile / "user" / "basic" / "Standard" / "Module1.xba"
    module.write_text(_macro(targets), encoding="utf-8")
    output = run([f'macro:///Standard.Module1.SaveAll("{source}","{PASSWORD}")'])
    for path in [*plain.values(), *encrypted.values()]:
        assert path.is_file(), f"the macro wrote no {path.name}:\n{output}"
    return LegacyWorkbooks(plain, encrypted)


@dataclass(frozen=True)
class _Runner:
    exe: str
    profile: Path

    def __call__(self, arguments: list[str]) -> str:
        """Run soffice headless with the private profile; what it printed."""
        command = [
            self.exe,
            "--headless",
            "--norestore",
            f"-env:UserInstallation={self.profile.as_uri()}",
            *arguments,
        ]
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = proc.communicate(timeout=CONVERT_TIMEOUT_S)
        except BaseException:  # a time-out or an interrupt: leave nothing running
            kill_group(proc.pid)
            proc.communicate()
            raise
        if group_alive(proc.pid):
            kill_group(proc.pid)
            raise AssertionError(f"soffice left processes behind (now killed):\n{output}")
        assert proc.returncode == 0, f"soffice exited with {proc.returncode}:\n{output}"
        return output
