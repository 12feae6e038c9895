"""What calamine opens for a workbook: the file itself, or an in-memory copy laid out as it expects.

calamine finds an xlsx's parts by fixed names (``<dir>workbook.xml``, ``<dir>_rels/
workbook.xml.rels``, ``<dir>sharedStrings.xml``, ``<dir>styles.xml``, ``<dir>`` being the folder
of the officeDocument target), joins sheet targets to ``<dir>`` without resolving ``..`` or
``\\``, and parses UTF-8 only; its xlsb reader is stricter still (``xl/workbook.bin``, sheets at
``xl/`` + target under ``worksheets/``, unprefixed ``Relationship`` elements, exact entry names).
A valid package laid out any other way (see ``package``) is handed to calamine as a copy with
the standard names: the workbook, sheet, string and style parts with their compressed bytes
unchanged (UTF-16 ones transcoded to UTF-8), new content types and relationships parts, and
nothing else.  The stored file is never changed: downloads give back what was uploaded.
"""

from __future__ import annotations

import codecs
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from chatflow.spreadsheets.package import (
    CONTENT_TYPES_PART,
    PACKAGE_RELS_PART,
    REL_BASES,
    XLSB_MAIN_TYPE,
    XLSX_MAIN_TYPES,
    Link,
    PackageMap,
    Part,
    canonical,
    folder_of,
    map_package,
)
from chatflow.spreadsheets.xml_scan import Utf8Stream
from chatflow.spreadsheets.zip_parts import (
    Budget,
    GateLimits,
    compressed_chunks,
    data_offset,
    member_pieces,
)

_ZIP_MAGIC = b"PK\x03\x04"
# The extensions calamine picks its reader by; any other name makes it look at the bytes.
_CALAMINE_KINDS = {".xlsx": "xlsx", ".xlsm": "xlsx", ".xlam": "xlsx", ".xlsb": "xlsb"}
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# Files reaching here passed the gate under the server's own limits (which may be higher than
# the defaults); this only keeps a file changed on disk since from inflating without end.
_VETTED = GateLimits(max_uncompressed_mb=64 * 1024)
_DECLARED_ENCODING = re.compile(rb"""^(<\?xml[^>]*?encoding\s*=\s*["'])[^"']*(["'])""")
_TYPES = {
    ("xlsx", "worksheet"): "application/vnd.openxmlformats-officedocument.spreadsheetml."
    "worksheet+xml",
    ("xlsx", "chartsheet"): "application/vnd.openxmlformats-officedocument.spreadsheetml."
    "chartsheet+xml",
    ("xlsx", "dialogsheet"): "application/vnd.openxmlformats-officedocument.spreadsheetml."
    "dialogsheet+xml",
    ("xlsx", "sharedStrings"): "application/vnd.openxmlformats-officedocument.spreadsheetml."
    "sharedStrings+xml",
    ("xlsx", "styles"): "application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml",
    ("xlsb", "worksheet"): "application/vnd.ms-excel.worksheet",
    ("xlsb", "chartsheet"): "application/vnd.ms-excel.chartsheet",
    ("xlsb", "dialogsheet"): "application/vnd.ms-excel.dialogsheet",
    ("xlsb", "sharedStrings"): "application/vnd.ms-excel.sharedStrings",
    ("xlsb", "styles"): "application/vnd.ms-excel.styles",
}


def readable_source(path: Path) -> Path | bytes:
    """``path`` itself when calamine reads its package as it is (or it is no OOXML package at
    all: csv, xls, ods), else the bytes of the standard-layout copy."""
    with path.open("rb") as fh:
        if fh.read(4) != _ZIP_MAGIC:
            return path
        with zipfile.ZipFile(fh) as archive:
            members = archive.infolist()
        if not any(canonical(m.filename) == CONTENT_TYPES_PART for m in members):
            return path
        package = map_package(fh, members, _VETTED)
        if _reads_as_is(fh, package, path.suffix.lower()):
            return path
        return standard_copy(fh, package)


def _reads_as_is(fh: BinaryIO, package: PackageMap, suffix: str) -> bool:
    """Whether every part calamine looks up is where, and as, the package map says it is."""
    if _CALAMINE_KINDS.get(suffix, package.kind) != package.kind:
        return False  # an xlsb named .xlsx: calamine would pick its reader by the name
    if package.package_rels is None or not package.plain_rels:
        return False
    ext = "xml" if package.kind == "xlsx" else "bin"
    folder = folder_of(package.workbook.name)
    if package.kind == "xlsb" and folder != "xl/":
        return False
    target = package.document_target or ""
    if package.kind == "xlsx" and target[: target.rfind("/") + 1].removeprefix("/") != folder:
        return False
    if package.workbook.name != f"{folder}workbook.{ext}":
        return False
    if any(part.member.filename != part.name for part in package.parsed()):
        return False  # backslashes or odd case in entry names
    for link, fixed in ((package.shared_strings, "sharedStrings"), (package.styles, "styles")):
        name = f"{folder}{fixed}.{ext}"
        if link.part.name != name if link else name.lower() in package.entry_names:
            return False  # calamine would miss it, or read a part the workbook does not name
    if not all(_calamine_path(package, link) == link.part.name for link in package.sheets):
        return False
    return package.kind == "xlsb" or not any(_starts_utf16(fh, p.member) for p in _copied(package))


def _calamine_path(package: PackageMap, link: Link) -> str | None:
    """The entry calamine opens for a sheet relationship (None: one it cannot read there)."""
    if package.kind == "xlsb":
        path = "xl/" + link.target
        return path if path.split("/")[1:2] == [link.kind + "s"] else None
    if link.target.startswith("/"):
        return link.target[1:]
    return folder_of(package.workbook.name) + link.target


def _copied(package: PackageMap) -> list[Part]:
    """The parts the standard copy carries over (everything else is made anew or left out)."""
    links = [*package.sheets, package.shared_strings, package.styles]
    return [package.workbook, *(link.part for link in links if link)]


def _starts_utf16(fh: BinaryIO, member: zipfile.ZipInfo) -> bool:
    """Whether the member's first bytes are a UTF-16 byte-order mark."""
    fh.seek(data_offset(fh, member))
    raw = fh.read(min(member.compress_size, 4096))
    try:
        head = (
            zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw, 4) if member.compress_type else raw
        )
    except zlib.error:
        return False  # calamine will say it is corrupt
    return head.startswith(_UTF16_BOMS)


def standard_copy(fh: BinaryIO, package: PackageMap) -> bytes:
    """The package with standard part names, as zip bytes."""
    ext = "xml" if package.kind == "xlsx" else "bin"
    writer = _ZipWriter()
    renamed: list[tuple[Part, str, str | None]] = [(package.workbook, f"xl/workbook.{ext}", None)]
    links: list[tuple[str, str, str]] = []
    for number, sheet in enumerate(package.sheets, start=1):
        target = f"{sheet.kind}s/sheet{number}.{ext}"
        renamed.append((sheet.part, "xl/" + target, sheet.kind))
        links.append((sheet.rel_id, sheet.kind, target))
    for link in (package.shared_strings, package.styles):
        if link is not None:
            renamed.append((link.part, f"xl/{link.kind}.{ext}", link.kind))
            links.append((link.rel_id, link.kind, f"{link.kind}.{ext}"))
    main = XLSX_MAIN_TYPES[0] if package.kind == "xlsx" else XLSB_MAIN_TYPE
    overrides = [(f"xl/workbook.{ext}", main)]
    overrides += [(name, _TYPES[package.kind, kind]) for _, name, kind in renamed if kind]
    writer.add(CONTENT_TYPES_PART, _content_types(overrides))
    writer.add(PACKAGE_RELS_PART, _relationships([("rId1", "officeDocument", overrides[0][0])]))
    writer.add(f"xl/_rels/workbook.{ext}.rels", _relationships(links))
    for part, name, _kind in renamed:
        if ext == "xml" and _starts_utf16(fh, part.member):
            writer.add_stream(name, _as_utf8(fh, part))
        elif part.member.file_size > 0xFFFFFFFF:  # a lie (the gate counted what is there)
            writer.add_stream(name, _inflated(fh, part))
        else:
            writer.add_raw(name, part.member, compressed_chunks(fh, part.member))
    return writer.finish()


def _as_utf8(fh: BinaryIO, part: Part) -> Iterator[bytes]:
    """A UTF-16 part as UTF-8, its XML declaration saying so."""
    stream = Utf8Stream(part.name)
    head = b""
    declared = False
    for piece in _inflated(fh, part):
        text = stream.feed(piece)
        if declared:
            yield text
            continue
        head += text
        if len(head) > 1024 or b"?>" in head:
            yield _DECLARED_ENCODING.sub(rb"\1UTF-8\2", head, count=1)
            declared = True
    tail = stream.close()
    yield tail if declared else _DECLARED_ENCODING.sub(rb"\1UTF-8\2", head + tail, count=1)


def _inflated(fh: BinaryIO, part: Part) -> Iterator[bytes]:
    return member_pieces(fh, part.member, Budget(_VETTED), _VETTED)


def _content_types(overrides: list[tuple[str, str]]) -> bytes:
    ns = "http://schemas.openxmlformats.org/package/2006/content-types"
    rels = "application/vnd.openxmlformats-package.relationships+xml"
    body = f'<Default Extension="rels" ContentType="{rels}"/>'
    body += '<Default Extension="xml" ContentType="application/xml"/>'
    body += "".join(f'<Override PartName="/{n}" ContentType="{t}"/>' for n, t in overrides)
    return f'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="{ns}">{body}</Types>'.encode()


def _relationships(links: Iterable[tuple[str, str, str]]) -> bytes:
    """A relationships part; ids are kept (the workbook part refers to its sheets by them)."""
    ns = "http://schemas.openxmlformats.org/package/2006/relationships"
    body = "".join(
        f'<Relationship Id="{_attr(rel_id)}" Type="{REL_BASES[0]}{kind}" Target="{target}"/>'
        for rel_id, kind, target in links
    )
    head = f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{ns}">'
    return (head + body + "</Relationships>").encode()


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


class _ZipWriter:
    """A minimal zip writer that can copy a member's compressed bytes as they are."""

    _LOCAL = struct.Struct("<4sHHHHHIIIHH")
    _CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
    _END = struct.Struct("<4sHHHHIIH")

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.central: list[bytes] = []

    def add(self, name: str, data: bytes) -> None:
        self.add_stream(name, iter([data]))

    def add_stream(self, name: str, pieces: Iterator[bytes]) -> None:
        """Deflate ``pieces`` into a new member."""
        offset = self.out.tell()
        self.out.write(b"\0" * (self._LOCAL.size + len(name)))
        deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        crc = size = 0
        for piece in pieces:
            crc = zlib.crc32(piece, crc)
            size += len(piece)
            self.out.write(deflater.compress(piece))
        self.out.write(deflater.flush())
        end = self.out.tell()
        compressed = end - offset - self._LOCAL.size - len(name)
        self.out.seek(offset)
        self._headers(name, zipfile.ZIP_DEFLATED, crc, compressed, size, offset)
        self.out.seek(end)

    def add_raw(self, name: str, member: zipfile.ZipInfo, chunks: Iterator[bytes]) -> None:
        """Copy ``member``'s compressed bytes under a new name."""
        offset = self.out.tell()
        self._headers(
            name, member.compress_type, member.CRC, member.compress_size, member.file_size, offset
        )
        for chunk in chunks:
            self.out.write(chunk)

    def _headers(self, name: str, method: int, crc: int, csize: int, size: int, at: int) -> None:
        encoded = name.encode("ascii")
        fields = (method, 0, 0x21, crc & 0xFFFFFFFF, csize, size, len(encoded))
        self.out.write(self._LOCAL.pack(b"PK\x03\x04", 20, 0, *fields, 0) + encoded)
        central = self._CENTRAL.pack(b"PK\x01\x02", 20, 20, 0, *fields, 0, 0, 0, 0, 0, at)
        self.central.append(central + encoded)

    def finish(self) -> bytes:
        start = self.out.tell()
        for entry in self.central:
            self.out.write(entry)
        size = self.out.tell() - start
        count = len(self.central)
        self.out.write(self._END.pack(b"PK\x05\x06", 0, 0, count, count, size, start, 0))
        return self.out.getvalue()
