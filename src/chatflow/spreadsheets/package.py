"""The OPC package map of an xlsx or xlsb: which parts a reader parses, found as Office finds them.

``[Content_Types].xml`` gives each part's content type; ``_rels/.rels`` points (relationship type
officeDocument, transitional or Strict) at the workbook part, wherever it lives; the workbook's
own relationships (``<dir>/_rels/<name>.rels``) point at its sheets, shared strings and styles.
Targets resolve as OPC says: relative to the source part's folder, or absolute from the package
root, ``\\`` read as ``/``, ``.`` and ``..`` resolved; a target that climbs out of the package, or
a sheet relationship to a URI or a missing part, is ``invalid_package``.  Zip entry names match
part names with ``\\`` read as ``/`` and ASCII case ignored (OPC part names compare so); two
entries with one name are ambiguous and refused.

Content types and relationships parts are read whole (at most ``MAP_PART_MAX`` bytes), go
through the gate's XML scanner first (no DTD, UTF-8 or UTF-16 with a BOM), and only then are
parsed, by expat, for their ``Default``/``Override``/``Relationship`` elements.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import unquote
from xml.parsers import expat

from chatflow.failures import StepFailed
from chatflow.spreadsheets.xml_scan import XmlScanner
from chatflow.spreadsheets.zip_parts import Budget, GateLimits, read_member

MAP_PART_MAX = 8 * 1024 * 1024
CONTENT_TYPES_PART = "[Content_Types].xml"
PACKAGE_RELS_PART = "_rels/.rels"
REL_BASES = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/",
    "http://purl.oclc.org/ooxml/officeDocument/relationships/",
    "http://schemas.microsoft.com/office/2006/relationships/",
)
SHEET_RELS = ("worksheet", "chartsheet", "dialogsheet")
MACRO_RELS = ("vbaProject", "xlMacrosheet", "xlIntlMacrosheet")
_SML = "application/vnd.openxmlformats-officedocument.spreadsheetml."
XLSX_MAIN_TYPES = (
    _SML + "sheet.main+xml",
    _SML + "template.main+xml",
    "application/vnd.ms-excel.sheet.macroEnabled.main+xml",
    "application/vnd.ms-excel.template.macroEnabled.main+xml",
    "application/vnd.ms-excel.addin.macroEnabled.main+xml",
)
XLSB_MAIN_TYPE = "application/vnd.ms-excel.sheet.binary.macroEnabled.main"
VBA_PROJECT_TYPE = "application/vnd.ms-office.vbaProject"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True)
class Part:
    """One part: its canonical name (``/``-separated, no leading ``/``) and its zip entry."""

    name: str
    member: zipfile.ZipInfo


@dataclass(frozen=True)
class Link:
    """A relationship the reader follows: its id, kind (``worksheet``...), target as written."""

    rel_id: str
    kind: str
    target: str
    part: Part


@dataclass(frozen=True)
class PackageMap:
    """Where a workbook's parts are, and whether the package carries macros."""

    kind: str  # "xlsx" or "xlsb"
    content_types: Part
    package_rels: Part | None
    document_target: str | None  # the officeDocument relationship's target, as written
    workbook: Part
    workbook_rels: Part
    sheets: tuple[Link, ...]
    shared_strings: Link | None
    styles: Link | None
    macros: str | None  # the part (or content type) holding macros
    plain_rels: bool  # relationships parts in UTF-8 with unprefixed elements
    entry_names: frozenset[str]  # every entry's canonical name, lowercased

    def parsed(self) -> list[Part]:
        """Every part a reader parses, content types and relationships first."""
        parts = [self.content_types, *([self.package_rels] if self.package_rels else [])]
        parts += [self.workbook_rels, self.workbook, *(link.part for link in self.sheets)]
        parts += [link.part for link in (self.shared_strings, self.styles) if link]
        return parts


def canonical(entry: str) -> str:
    """A zip entry's part name: ``\\`` read as ``/``, no leading ``/``."""
    return entry.replace("\\", "/").lstrip("/")


def rels_part_name(part: str) -> str:
    """The relationships part of ``part``: ``xl/a.xml`` -> ``xl/_rels/a.xml.rels``."""
    folder, _, name = part.rpartition("/")
    return f"{folder}/_rels/{name}.rels" if folder else f"_rels/{name}.rels"


def folder_of(part: str) -> str:
    """The folder targets from ``part``'s relationships are relative to ("" or ``xl/``)."""
    return part.rpartition("/")[0] + "/" if "/" in part else ""


def resolve(source: str, target: str) -> str | None:
    """The part name ``target`` points at from the part ``source`` ("" for the package), or
    None for a URI outside the package; climbing above the package root is refused."""
    path = target.replace("\\", "/").split("#", 1)[0]
    if _SCHEME.match(path):
        return None
    if path.startswith("//"):
        raise _escapes(source, target)
    segments: list[str] = []
    for segment in (path if path.startswith("/") else folder_of(source) + path).split("/"):
        if segment == "..":
            if not segments:
                raise _escapes(source, target)
            segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    return "/".join(segments)


def _escapes(source: str, target: str) -> StepFailed:
    return StepFailed(
        "invalid_package",
        f"A relationship of part '{source or '/'}' points outside the package ('{target[:200]}').",
    )


class _Entries:
    """Zip entries by canonical, lowercased name."""

    def __init__(self, members: Sequence[zipfile.ZipInfo]) -> None:
        self.by_name: dict[str, zipfile.ZipInfo] = {}
        for member in members:
            name = canonical(member.filename)
            if not name or name.endswith("/"):
                continue  # a folder entry
            key = name.lower()
            if key in self.by_name:
                raise StepFailed(
                    "invalid_package",
                    f"The package has two entries named '{name[:200]}'; which one is meant is "
                    "ambiguous.",
                )
            self.by_name[key] = member

    def part(self, name: str) -> Part | None:
        member = self.by_name.get(name.lower()) or self.by_name.get(unquote(name).lower())
        return None if member is None else Part(canonical(member.filename), member)


@dataclass
class _Element:
    local: str
    attrs: dict[str, str]
    prefixed: bool


class _MapReader:
    """Reads the content types and relationships parts of one package."""

    def __init__(self, fh: BinaryIO, entries: _Entries, limits: GateLimits) -> None:
        self.fh = fh
        self.entries = entries
        self.limits = limits
        self.budget = Budget(limits)
        self.plain = True

    def elements(self, part: Part, wanted: str) -> list[_Element]:
        """The ``wanted`` elements of ``part``, after the XML scanner has passed all of it."""
        data = read_member(self.fh, part.member, self.budget, self.limits, MAP_PART_MAX)
        scanner = XmlScanner(part.name, self.limits)
        scanner.feed(data)
        scanner.close()
        found: list[_Element] = []

        def start(name: str, attrs: dict[str, str]) -> None:
            pieces = name.split(" ")
            if pieces[min(1, len(pieces) - 1)] == wanted:
                plain = {key.split(" ")[min(1, key.count(" "))]: v for key, v in attrs.items()}
                found.append(_Element(wanted, plain, len(pieces) == 3))

        parser = expat.ParserCreate(namespace_separator=" ")
        parser.namespace_prefixes = True
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartElementHandler = start
        try:
            parser.Parse(data, True)
        except expat.ExpatError as exc:
            raise StepFailed(
                "unreadable_file", f"Part '{part.name}' is not well-formed XML ({exc})."
            ) from exc
        if scanner.utf8.transcoded or any(e.prefixed for e in found):
            self.plain = False
        return found

    def relationships(self, part: Part, source: str) -> list[tuple[str, str, str, str | None]]:
        """(id, kind, target, part name) of each relationship; part name None if external."""
        links = []
        for element in self.elements(part, "Relationship"):
            rel_type = element.attrs.get("Type", "")
            kind = next((rel_type[len(b) :] for b in REL_BASES if rel_type.startswith(b)), rel_type)
            target = element.attrs.get("Target", "")
            external = element.attrs.get("TargetMode", "Internal") == "External"
            name = None if external else resolve(source, target)
            links.append((element.attrs.get("Id", ""), kind, target, name))
        return links


def map_package(fh: BinaryIO, members: Sequence[zipfile.ZipInfo], limits: GateLimits) -> PackageMap:
    """The package's map; StepFailed (not_a_spreadsheet, invalid_package...) if it has none."""
    entries = _Entries(members)
    reader = _MapReader(fh, entries, limits)
    content_types = entries.part(CONTENT_TYPES_PART)
    if content_types is None:
        raise _not_a_workbook(f"no {CONTENT_TYPES_PART}")
    defaults, overrides = _content_types(reader, content_types)
    package_rels = entries.part(PACKAGE_RELS_PART)
    target, name = _office_document(reader, package_rels, overrides)
    workbook = entries.part(name) if name else None
    if workbook is None:
        raise _not_a_workbook(f"no {name or 'workbook part'}")
    main_type = overrides.get(workbook.name.lower()) or defaults.get(_extension(workbook.name))
    kind = _workbook_kind(main_type, workbook.name)
    workbook_rels = entries.part(rels_part_name(workbook.name))
    if workbook_rels is None:
        raise _not_a_workbook(f"no {rels_part_name(workbook.name)} naming its sheets")
    links = _workbook_links(reader, workbook_rels, workbook.name)
    sheets = tuple(link for link in links if link.kind in SHEET_RELS)
    first = {link.kind: link for link in reversed(links)}
    return PackageMap(
        kind=kind,
        content_types=content_types,
        package_rels=package_rels,
        document_target=target,
        workbook=workbook,
        workbook_rels=workbook_rels,
        sheets=sheets,
        shared_strings=first.get("sharedStrings"),
        styles=first.get("styles"),
        macros=_macros(links, defaults, overrides, entries),
        plain_rels=reader.plain,
        entry_names=frozenset(entries.by_name),
    )


def _not_a_workbook(missing: str) -> StepFailed:
    return StepFailed(
        "not_a_spreadsheet", f"The file is a zip archive but not an Excel workbook ({missing})."
    )


def _extension(name: str) -> str:
    return name.rpartition(".")[2].lower() if "." in name.rpartition("/")[2] else ""


def _content_types(reader: _MapReader, part: Part) -> tuple[dict[str, str], dict[str, str]]:
    """(extension -> content type, lowercased part name -> content type)."""
    defaults = {
        e.attrs.get("Extension", "").lower(): e.attrs.get("ContentType", "")
        for e in reader.elements(part, "Default")
    }
    overrides = {
        canonical(e.attrs.get("PartName", "")).lower(): e.attrs.get("ContentType", "")
        for e in reader.elements(part, "Override")
    }
    return defaults, overrides


def _office_document(
    reader: _MapReader, package_rels: Part | None, overrides: dict[str, str]
) -> tuple[str | None, str | None]:
    """(target as written, part name) of the workbook part.  Without ``_rels/.rels`` the part
    whose content type says it is a workbook stands in."""
    if package_rels is not None:
        for _rel_id, kind, target, name in reader.relationships(package_rels, ""):
            if kind == "officeDocument" and name is not None:
                return target, name
        return None, None
    for name, content_type in overrides.items():
        if content_type in (*XLSX_MAIN_TYPES, XLSB_MAIN_TYPE):
            return None, name
    return None, None


def _workbook_kind(main_type: str | None, name: str) -> str:
    """xlsx or xlsb by the workbook's content type (or extension); other documents are refused."""
    if main_type in XLSX_MAIN_TYPES:
        return "xlsx"
    if main_type == XLSB_MAIN_TYPE:
        return "xlsb"
    if main_type and (main_type.endswith((".main+xml", ".main")) or "ml." in main_type):
        raise _not_a_workbook(f"its main part is a {main_type[:120]}")
    return "xlsb" if name.lower().endswith(".bin") else "xlsx"


def _workbook_links(reader: _MapReader, rels: Part, workbook: str) -> list[Link]:
    """The workbook's relationships to parts a reader needs or refuses (sheets, strings,
    styles, macros), in order; a sheet pointing outside the package or nowhere is refused."""
    links = []
    for rel_id, kind, target, name in reader.relationships(rels, workbook):
        if kind not in (*SHEET_RELS, "sharedStrings", "styles", *MACRO_RELS):
            continue
        part = reader.entries.part(name) if name is not None else None
        if part is None:
            if kind in MACRO_RELS:
                continue
            raise StepFailed(
                "invalid_package",
                f"The workbook's {kind} relationship '{rel_id[:50]}' points at "
                f"'{target[:200]}', which is not a part of this package.",
            )
        links.append(Link(rel_id, kind, target, part))
    return links


def _macros(
    links: list[Link], defaults: dict[str, str], overrides: dict[str, str], entries: _Entries
) -> str | None:
    """The part (or content type) that makes this a macro-enabled package, if any: found by
    relationship, by content type, or by the name Excel gives it."""
    for link in links:
        if link.kind in MACRO_RELS:
            return link.part.name
    for name, content_type in overrides.items():
        if content_type == VBA_PROJECT_TYPE or "macrosheet" in content_type:
            return name
    for key in entries.by_name:
        ext = _extension(key)
        if key.rpartition("/")[2] == "vbaproject.bin" or defaults.get(ext) == VBA_PROJECT_TYPE:
            return key
    return None
