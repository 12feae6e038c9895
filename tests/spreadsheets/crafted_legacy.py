"""Hand-built xls and ods files, valid or crafted, for the legacy gates' tests.

``compound_file`` writes an OLE2 compound file (MS-CFB version 3: 512-byte sectors, the FAT
listed in the header's DIFAT, no miniFAT: every stream is padded to at least 4096 bytes so it
lives in regular sectors) holding the given streams; keyword arguments overwrite header fields,
FAT entries or directory entry types, which is how each crafted defect is made.
``biff_workbook`` writes a BIFF8 workbook stream (globals with BoundSheet records, then one
substream per sheet); ``number``, ``dimensions`` and ``record`` write its records.  ``ods``
writes an OpenDocument spreadsheet zip around a given content.xml.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

ENDOFCHAIN = 0xFFFFFFFE
FREESECT = 0xFFFFFFFF
FATSECT = 0xFFFFFFFD
SECTOR = 512
_WORDS_PER_SECTOR = SECTOR // 4


def record(typ: int, data: bytes = b"") -> bytes:
    return struct.pack("<HH", typ, len(data)) + data


def number(row: int, col: int, value: float) -> bytes:
    """A NUMBER cell record."""
    return record(0x0203, struct.pack("<HHHd", row, col, 0, value))


def dimensions(first_row: int, last_row: int, first_col: int, last_col: int) -> bytes:
    """A BIFF8 DIMENSIONS record (last row and column exclusive, as Excel writes them)."""
    return record(0x0200, struct.pack("<IIHHH", first_row, last_row, first_col, last_col, 0))


def _bof(substream: int) -> bytes:
    return record(0x0809, struct.pack("<HHHHII", 0x0600, substream, 0x0DBB, 0x07CC, 0, 6))


def _bound_sheet(position: int, name: str) -> bytes:
    return record(0x0085, struct.pack("<IBBBB", position, 0, 0, len(name), 0) + name.encode())


def biff_workbook(
    sheets: dict[str, bytes], *, filepass: bool = False, bound_repeat: int = 1
) -> bytes:
    """A workbook stream whose sheets hold the given records (each BoundSheet record written
    ``bound_repeat`` times; ``filepass``: an RC4 FILEPASS record in the globals)."""
    head = _bof(0x0005)
    if filepass:
        head += record(0x002F, struct.pack("<HHH", 1, 1, 1) + bytes(48))
    bounds_size = sum(len(_bound_sheet(0, name)) for name in sheets) * bound_repeat
    position = len(head) + bounds_size + len(record(0x000A))
    bounds = bodies = b""
    for name, body in sheets.items():
        substream = _bof(0x0010) + body + record(0x000A)
        bounds += _bound_sheet(position, name) * bound_repeat
        bodies += substream
        position += len(substream)
    return head + bounds + record(0x000A) + bodies


def _entry(name: str, kind: int, start: int, size: int, child: int, right: int) -> bytes:
    raw = name.encode("utf-16-le") + b"\0\0"
    links = struct.pack("<III", FREESECT, right, child)
    return (
        raw.ljust(64, b"\0")
        + struct.pack("<HBB", len(raw), kind, 1)
        + links
        + bytes(36)
        + struct.pack("<IQ", start, size)
    )


def compound_file(
    streams: dict[str, bytes],
    *,
    header: dict[str, int] | None = None,
    fat: dict[int, int] | None = None,
    kinds: dict[str, int] | None = None,
) -> bytes:
    """A version 3 compound file holding ``streams`` (see the module doc for the overrides)."""
    streams = {n: data.ljust(4096, b"\0") for n, data in streams.items()}
    dir_sectors = -(-(1 + len(streams)) * 128 // SECTOR)
    data_sectors = sum(-(-len(data) // SECTOR) for data in streams.values())
    fat_sectors = 1
    while fat_sectors * _WORDS_PER_SECTOR < fat_sectors + dir_sectors + data_sectors:
        fat_sectors += 1
    table = [FATSECT] * fat_sectors
    table += [*range(fat_sectors + 1, fat_sectors + dir_sectors), ENDOFCHAIN]
    starts, body = {}, b""
    for name, data in streams.items():
        starts[name] = len(table)
        count = -(-len(data) // SECTOR)
        table += [*range(len(table) + 1, len(table) + count), ENDOFCHAIN]
        body += data.ljust(count * SECTOR, b"\0")
    table += [FREESECT] * (fat_sectors * _WORDS_PER_SECTOR - len(table))
    for index, value in (fat or {}).items():
        table[index] = value
    names = list(streams)
    directory = _entry("Root Entry", 5, ENDOFCHAIN, 0, 1 if names else FREESECT, FREESECT)
    for i, name in enumerate(names):
        right = i + 2 if i + 1 < len(names) else FREESECT
        kind = (kinds or {}).get(name, 2)
        directory += _entry(name, kind, starts[name], len(streams[name]), FREESECT, right)
    fields = {"fat_count": fat_sectors, "dir_start": fat_sectors, "minifat_start": ENDOFCHAIN}
    fields |= {"minifat_count": 0, "difat_start": ENDOFCHAIN, "difat_count": 0}
    fields |= header or {}
    difat = [*range(fat_sectors), *[FREESECT] * (109 - fat_sectors)]
    head = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16)
    head += struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + bytes(6)
    head += struct.pack("<II", 0, fields["fat_count"])
    head += struct.pack("<III", fields["dir_start"], 0, 4096)
    head += struct.pack("<II", fields["minifat_start"], fields["minifat_count"])
    head += struct.pack("<II", fields["difat_start"], fields["difat_count"])
    head += struct.pack("<109I", *difat)
    return (
        head
        + struct.pack(f"<{len(table)}I", *table)
        + directory.ljust(dir_sectors * SECTOR, b"\0")
        + body
    )


ODS_MIMETYPE = "application/vnd.oasis.opendocument.spreadsheet"
MANIFEST = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<manifest:manifest '
    'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3">'
    '<manifest:file-entry manifest:full-path="/" manifest:media-type="{mimetype}"/>'
    '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
    "</manifest:manifest>"
)
# What LibreOffice writes for each encrypted part (the values here are made up).
ENCRYPTED_ENTRY = (
    '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">'
    '<manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="AAAA">'
    '<manifest:algorithm manifest:algorithm-name="Blowfish CFB" '
    'manifest:initialisation-vector="AAAA"/></manifest:encryption-data></manifest:file-entry>'
)
CONTENT_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<office:document-content '
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.3">'
    "<office:body><office:spreadsheet>"
)
CONTENT_TAIL = "</office:spreadsheet></office:body></office:document-content>"


def ods(
    path: Path,
    tables: str,
    *,
    mimetype: str = ODS_MIMETYPE,
    extra: dict[str, bytes] | None = None,
    head: str = CONTENT_HEAD,
    content: bytes | None = None,
    manifest: str = MANIFEST,
) -> Path:
    """An OpenDocument zip whose content.xml holds ``tables`` (``<table:table>`` elements), or
    ``content``; the manifest is written last, where LibreOffice writes it."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", mimetype, compress_type=zipfile.ZIP_STORED)
        archive.writestr("content.xml", content or (head + tables + CONTENT_TAIL).encode())
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
        archive.writestr("META-INF/manifest.xml", manifest.format(mimetype=mimetype))
    return path


def table(name: str, rows: str) -> str:
    return f'<table:table table:name="{name}">{rows}</table:table>'


def float_cell(value: float, repeat: int = 1) -> str:
    repeated = f' table:number-columns-repeated="{repeat}"' if repeat > 1 else ""
    return f'<table:table-cell{repeated} office:value-type="float" office:value="{value}"/>'


def row(cells: str, repeat: int = 1) -> str:
    repeated = f' table:number-rows-repeated="{repeat}"' if repeat > 1 else ""
    return f"<table:table-row{repeated}>{cells}</table:table-row>"
