"""Valid but odd xlsx packages, written part by part with zipfile and XML text.

Every workbook holds the same table (``COLUMNS``, ``TYPES``, ``ROWS``) laid out the way some real
producer lays it out: the workbook at the package root, absolute or backslash relationship
targets, backslash zip entry names, UTF-16 parts, Strict OOXML namespaces, prefixed elements,
inline or rich-text strings, the 1904 date system.  ``VARIANTS`` maps a name to the writer;
each writer takes a folder and returns the file it wrote.  The xlsb writer is in
``tests/spreadsheets/odd_xlsb.py``.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from xml.sax.saxutils import escape

COLUMNS = ["id", "name", "ok", "when", "amount"]
TYPES = ["integer", "text", "boolean", "date", "float"]
ROWS: list[list[object]] = [
    [1, "alpha", True, dt.date(2024, 1, 2), 2.5],
    [2, "beta & <gamma>", False, dt.date(2024, 3, 4), -0.25],
]

_TRANSITIONAL = (
    "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
)
_STRICT = (
    "http://purl.oclc.org/ooxml/spreadsheetml/main",
    "http://purl.oclc.org/ooxml/officeDocument/relationships",
)
PACKAGE_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
CONTENT_TYPES = "http://schemas.openxmlformats.org/package/2006/content-types"
_SML = "application/vnd.openxmlformats-officedocument.spreadsheetml"
DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


@dataclass(frozen=True)
class Layout:
    """Where each part lives and how the package spells things."""

    workbook: str = "xl/workbook.xml"
    sheet: str = "xl/worksheets/sheet1.xml"
    strings: str = "xl/sharedStrings.xml"
    styles: str = "xl/styles.xml"
    targets: str = "relative"  # "relative", "absolute" or "backslash"
    backslash_entries: bool = False
    prefix: str = ""  # namespace prefix of the SpreadsheetML elements ("" = default namespace)
    strict: bool = False
    strings_as: str = "shared"  # "shared", "inline" or "rich"
    date1904: bool = False
    utf16: frozenset[str] = field(default_factory=frozenset)  # part names written as UTF-16
    extra: tuple[tuple[str, bytes], ...] = ()  # more parts, as they are


def serial(day: dt.date, date1904: bool) -> int:
    """The day's serial number in the workbook's date system."""
    return (day - (dt.date(1904, 1, 1) if date1904 else dt.date(1899, 12, 30))).days


def _target(source_part: str, part: str, style: str) -> str:
    """How ``source_part``'s relationships name ``part``."""
    if style == "absolute":
        return "/" + part
    base = source_part.rsplit("/", 1)[0] + "/" if "/" in source_part else ""
    relative = part[len(base) :] if part.startswith(base) else _up_and_over(base, part)
    return relative.replace("/", "\\") if style == "backslash" else relative


def _up_and_over(base: str, part: str) -> str:
    """A relative target through ``..`` (base "xl/", part "data/s.xml" -> "../data/s.xml")."""
    return "../" * base.count("/") + part


def rels_path(part: str) -> str:
    """The relationships part of ``part``: ``xl/a.xml`` -> ``xl/_rels/a.xml.rels``."""
    folder, _, name = part.rpartition("/")
    return f"{folder}/_rels/{name}.rels" if folder else f"_rels/{name}.rels"


def relationships(items: list[tuple[str, str, str]]) -> str:
    """A relationships part: (id, type, target) triples."""
    body = "".join(
        f'<Relationship Id="{rid}" Type="{kind}" Target="{escape(target)}"/>'
        for rid, kind, target in items
    )
    return f'{DECLARATION}<Relationships xmlns="{PACKAGE_RELS}">{body}</Relationships>'


def content_types(overrides: dict[str, str], defaults: dict[str, str] | None = None) -> str:
    """A ``[Content_Types].xml``: part name -> content type overrides, extension defaults."""
    defaults = {
        "rels": "application/vnd.openxmlformats-package.relationships+xml",
        "xml": "application/xml",
        **(defaults or {}),
    }
    body = "".join(
        f'<Default Extension="{ext}" ContentType="{kind}"/>' for ext, kind in defaults.items()
    ) + "".join(
        f'<Override PartName="/{name}" ContentType="{kind}"/>' for name, kind in overrides.items()
    )
    return f'{DECLARATION}<Types xmlns="{CONTENT_TYPES}">{body}</Types>'


def _tag(layout: Layout, name: str) -> str:
    return f"{layout.prefix}:{name}" if layout.prefix else name


def _namespaces(layout: Layout) -> str:
    main, rel = _STRICT if layout.strict else _TRANSITIONAL
    own = f"xmlns:{layout.prefix}" if layout.prefix else "xmlns"
    return f'{own}="{main}" xmlns:r="{rel}"'


def _element(layout: Layout, name: str, body: str, attrs: str = "") -> str:
    tag = _tag(layout, name)
    return f"<{tag}{attrs}>{body}</{tag}>"


def workbook_xml(layout: Layout) -> str:
    t = _tag(layout, "")
    conformance = ' conformance="strict"' if layout.strict else ""
    pr = f'<{t}workbookPr date1904="1"/>' if layout.date1904 else f"<{t}workbookPr/>"
    sheets = f'<{t}sheets><{t}sheet name="Data" sheetId="1" r:id="rId1"/></{t}sheets>'
    attrs = f" {_namespaces(layout)}{conformance}"
    return DECLARATION + _element(layout, "workbook", pr + sheets, attrs)


def _strings(layout: Layout) -> list[str]:
    names = [str(row[1]) for row in ROWS]
    return [*COLUMNS, *names]


def shared_strings_xml(layout: Layout) -> str:
    t = _tag(layout, "")
    items = []
    for text in _strings(layout):
        if layout.strings_as == "rich" and len(text) > 2:
            head, tail = escape(text[:2]), escape(text[2:])
            bold = f'<{t}rPr><{t}b/><{t}sz val="11"/></{t}rPr>'
            items.append(
                f"<{t}si><{t}r>{bold}<{t}t>{head}</{t}t></{t}r>"
                f'<{t}r><{t}t xml:space="preserve">{tail}</{t}t></{t}r></{t}si>'
            )
        else:
            items.append(f"<{t}si><{t}t>{escape(text)}</{t}t></{t}si>")
    count = f' count="{len(items)}" uniqueCount="{len(items)}"'
    return DECLARATION + _element(layout, "sst", "".join(items), f" {_namespaces(layout)}{count}")


def _text_cell(layout: Layout, ref: str, text: str, index: int) -> str:
    t = _tag(layout, "")
    if layout.strings_as == "inline":
        return f'<{t}c r="{ref}" t="inlineStr"><{t}is><{t}t>{escape(text)}</{t}t></{t}is></{t}c>'
    return f'<{t}c r="{ref}" t="s"><{t}v>{index}</{t}v></{t}c>'


def sheet_xml(layout: Layout) -> str:
    t = _tag(layout, "")
    rows = []
    header = "".join(
        _text_cell(layout, f"{chr(65 + i)}1", name, i) for i, name in enumerate(COLUMNS)
    )
    rows.append(f'<{t}row r="1">{header}</{t}row>')
    for n, (ident, name, ok, when, amount) in enumerate(ROWS, start=2):
        assert isinstance(when, dt.date)
        cells = (
            f'<{t}c r="A{n}"><{t}v>{ident}</{t}v></{t}c>'
            + _text_cell(layout, f"B{n}", str(name), len(COLUMNS) + n - 2)
            + f'<{t}c r="C{n}" t="b"><{t}v>{int(bool(ok))}</{t}v></{t}c>'
            + f'<{t}c r="D{n}" s="1"><{t}v>{serial(when, layout.date1904)}</{t}v></{t}c>'
            + f'<{t}c r="E{n}"><{t}v>{amount}</{t}v></{t}c>'
        )
        rows.append(f'<{t}row r="{n}">{cells}</{t}row>')
    body = f'<{t}dimension ref="A1:E{len(ROWS) + 1}"/><{t}sheetData>{"".join(rows)}</{t}sheetData>'
    return DECLARATION + _element(layout, "worksheet", body, f" {_namespaces(layout)}")


def styles_xml(layout: Layout) -> str:
    t = _tag(layout, "")
    body = (
        f'<{t}fonts count="1"><{t}font><{t}sz val="11"/><{t}name val="Calibri"/></{t}font>'
        f"</{t}fonts>"
        f'<{t}fills count="1"><{t}fill><{t}patternFill patternType="none"/></{t}fill></{t}fills>'
        f'<{t}borders count="1"><{t}border/></{t}borders>'
        f'<{t}cellStyleXfs count="1"><{t}xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
        f"</{t}cellStyleXfs>"
        f'<{t}cellXfs count="2"><{t}xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
        f'<{t}xf numFmtId="14" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        f"</{t}cellXfs>"
    )
    return DECLARATION + _element(layout, "styleSheet", body, f" {_namespaces(layout)}")


def _encode(name: str, text: str, layout: Layout) -> bytes:
    if name in layout.utf16:
        return "\ufeff".encode("utf-16-le") + text.replace(
            'encoding="UTF-8"', 'encoding="UTF-16"'
        ).encode("utf-16-le")
    return text.encode("utf-8")


def package_parts(layout: Layout) -> dict[str, bytes]:
    """Every part of the package by its part name (no leading slash)."""
    ns = (_STRICT if layout.strict else _TRANSITIONAL)[1] + "/"
    workbook_rels = [
        ("rId1", ns + "worksheet", _target(layout.workbook, layout.sheet, layout.targets)),
        ("rId2", ns + "styles", _target(layout.workbook, layout.styles, layout.targets)),
    ]
    texts = {
        layout.workbook: workbook_xml(layout),
        layout.sheet: sheet_xml(layout),
        layout.styles: styles_xml(layout),
    }
    if layout.strings_as != "inline":
        workbook_rels.append(
            ("rId3", ns + "sharedStrings", _target(layout.workbook, layout.strings, layout.targets))
        )
        texts[layout.strings] = shared_strings_xml(layout)
    overrides = {
        layout.workbook: f"{_SML}.sheet.main+xml",
        layout.sheet: f"{_SML}.worksheet+xml",
        layout.styles: f"{_SML}.styles+xml",
        layout.strings: f"{_SML}.sharedStrings+xml",
    }
    root_rels = [("rId1", ns + "officeDocument", _target("", layout.workbook, layout.targets))]
    texts["[Content_Types].xml"] = content_types({k: v for k, v in overrides.items() if k in texts})
    texts["_rels/.rels"] = relationships(root_rels)
    texts[rels_path(layout.workbook)] = relationships(workbook_rels)
    parts = {name: _encode(name, text, layout) for name, text in texts.items()}
    parts.update(dict(layout.extra))
    return parts


def write_package(path: Path, parts: dict[str, bytes], *, backslash_entries: bool = False) -> Path:
    """Zip ``parts`` (content types first, as Office does); optionally with ``\\`` in names."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            entry = name.replace("/", "\\") if backslash_entries else name
            archive.writestr(
                zipfile.ZipInfo(entry, (2024, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED
            )
    return path


def write_xlsx(path: Path, layout: Layout) -> Path:
    """The table as an xlsx package laid out by ``layout``."""
    return write_package(path, package_parts(layout), backslash_entries=layout.backslash_entries)


def _custom_xml_utf16() -> tuple[tuple[str, bytes], ...]:
    """A SharePoint-style customXml item: UTF-16 with a BOM, no reader parses it."""
    text = (
        '<?xml version="1.0" encoding="UTF-16" standalone="no"?>'
        '<b:Sources xmlns:b="http://schemas.openxmlformats.org/officeDocument/2006/bibliography"'
        ' SelectedStyle="\\APA.XSL" StyleName="APA"/>'
    )
    props = (
        '<?xml version="1.0" encoding="UTF-16" standalone="no"?>'
        '<ds:datastoreItem ds:itemID="{6C2A3B1F-0000-4000-8000-000000000001}"'
        ' xmlns:ds="http://schemas.openxmlformats.org/officeDocument/2006/customXml"/>'
    )
    utf16 = "\ufeff".encode("utf-16-le")
    return (
        ("customXml/item1.xml", utf16 + text.encode("utf-16-le")),
        ("customXml/itemProps1.xml", utf16 + props.encode("utf-16-le")),
        (
            "customXml/_rels/item1.xml.rels",
            relationships(
                [
                    (
                        "rId1",
                        "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
                        "customXmlProps",
                        "itemProps1.xml",
                    )
                ]
            ).encode("utf-8"),
        ),
    )


ODD_LAYOUTS: dict[str, Layout] = {
    "workbook_at_root": Layout(
        workbook="workbook.xml",
        sheet="worksheets/sheet1.xml",
        strings="sharedStrings.xml",
        styles="styles.xml",
    ),
    "renamed_parts": Layout(
        workbook="book/main.xml",
        sheet="data/first.xml",
        strings="book/strings.xml",
        styles="book/look.xml",
    ),
    "absolute_targets": Layout(targets="absolute"),
    "backslash_targets": Layout(targets="backslash"),
    "backslash_entry_names": Layout(backslash_entries=True),
    "utf16_custom_xml": Layout(extra=_custom_xml_utf16()),
    "utf16_workbook_parts": Layout(
        utf16=frozenset({"xl/workbook.xml", "xl/worksheets/sheet1.xml", "xl/sharedStrings.xml"})
    ),
    "strict_namespaces": Layout(strict=True),
    "prefixed_elements": Layout(prefix="x"),
    "strict_prefixed_renamed": Layout(
        strict=True, prefix="s", workbook="xl/wb.xml", sheet="xl/ws/one.xml", targets="absolute"
    ),
    "inline_strings": Layout(strings_as="inline"),
    "rich_text_strings": Layout(strings_as="rich"),
    "date1904": Layout(date1904=True),
}


def _writer(name: str, layout: Layout) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        return write_xlsx(folder / f"{name}.xlsx", layout)

    write.__name__ = f"write_{name}"
    return write


VARIANTS: dict[str, Callable[[Path], Path]] = {
    name: _writer(name, layout) for name, layout in ODD_LAYOUTS.items()
}


def escaping_target(folder: Path) -> Path:
    """A package whose workbook relationship points outside it (``../../x``)."""
    parts = package_parts(Layout())
    parts["xl/_rels/workbook.xml.rels"] = relationships(
        [
            ("rId1", _TRANSITIONAL[1] + "/worksheet", "../../etc/sheet1.xml"),
            ("rId2", _TRANSITIONAL[1] + "/styles", "styles.xml"),
            ("rId3", _TRANSITIONAL[1] + "/sharedStrings", "sharedStrings.xml"),
        ]
    ).encode()
    return write_package(folder / "escaping_target.xlsx", parts)


def with_layout(**changes: object) -> Layout:
    """The standard layout with ``changes``."""
    return replace(Layout(), **changes)  # type: ignore[arg-type]
