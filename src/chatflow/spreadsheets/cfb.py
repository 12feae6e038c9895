"""The gate for OLE2 compound files (MS-CFB), the container of .xls workbooks.

calamine trusts a compound file's header and chains: it follows sector chains without looking
for cycles (a directory chain that loops made calamine 0.37 grow until it aborted, an abort no
``except`` sees; so did a looping DIFAT chain), indexes the FAT with whatever a chain says,
and calamine 0.36's source (a version the python-calamine pin allows) reserves memory for the
FAT sector count the header claims and for a DIFAT size read from header bytes 62..66, which
belong to the miniFAT fields (0.37 survived a claim of 2**31 FAT sectors).  ``CompoundFile``
reads the structure itself first, with every count bounded by what the file actually holds:

- the header: magic, byte order, version 3 or 4, sectors of 512 or 4096 bytes, mini sectors of
  64 bytes; the FAT, miniFAT, DIFAT and directory sector counts at most the file's sectors;
- the DIFAT chain, the FAT, the miniFAT, the directory and every stream read: each sector
  number inside the file (and inside the FAT or miniFAT that maps it), each chain visits no
  sector twice (a cycle is refused, not followed), each FAT sector listed once;
- directory entries: at most 65,536, names decoded as calamine decodes them, so the stream
  found here is the one calamine reads.

A structure that breaks these is ``unreadable_file``: to a user, a crafted structure and a
damaged one are the same thing, a file that cannot be read.  ``check_xls_container`` then
tells an xls from other OLE files and hands its workbook stream to ``biff``.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from chatflow.failures import StepFailed
from chatflow.spreadsheets.biff import check_sheets, read_globals

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ENDOFCHAIN = 0xFFFFFFFE
# Sector numbers from here up are markers (DIFSECT, FATSECT, ENDOFCHAIN, FREESECT).
_FIRST_MARKER = 0xFFFFFFFA
_DIFSECT = 0xFFFFFFFC
_HEADER_BYTES = 512
_MINI_SECTOR = 64
_MINI_CUTOFF = 4096
_ENTRY_BYTES = 128
_HEADER = struct.Struct("<8s16xHHHHH6xIIIIIIIII")
_ENTRY = struct.Struct("<64sHB49xIQ")
_ROOT = 5
# calamine 0.36 reserves four bytes per DIFAT entry for this many entries (header bytes
# 62..66) before reading any; real files give a few hundred thousand at most.
_MAX_DIFAT_RESERVE = 1 << 24
# Workbooks have a few dozen directory entries; documents with many embedded objects, hundreds.
_MAX_ENTRIES = 65_536


@dataclass(frozen=True)
class Entry:
    """One directory entry: ``kind`` 0 unused, 1 storage, 2 stream, 5 root."""

    name: str
    kind: int
    start: int
    size: int


# calamine's names for the workbook stream, in the order it looks for them.
WORKBOOK_STREAMS = ("Workbook", "Book", "WORKBOOK", "BOOK")
# An encrypted xlsx, xlsb or xlsm is an OLE file holding these streams (MS-OFFCRYPTO).
_ENCRYPTED_PACKAGE = frozenset({"EncryptionInfo", "EncryptedPackage"})
_VBA_STORAGE = "_VBA_PROJECT_CUR"


def check_xls_container(path: Path, max_cells: int) -> None:
    """Refuse anything but a readable, bounded, unencrypted xls workbook without macros."""
    with path.open("rb") as fh:
        compound = CompoundFile(fh, path.stat().st_size)
        names = compound.names()
        if names & _ENCRYPTED_PACKAGE:
            raise password_protected()
        entry = compound.find(WORKBOOK_STREAMS)
        if entry is None:
            raise StepFailed(
                "not_a_spreadsheet",
                "The file is an OLE compound file (a Word document, say) but not an Excel "
                "workbook: it has no Workbook stream.",
            )
        if _VBA_STORAGE in names:
            raise macros_not_supported()
        stream = compound.read(entry)
    found = read_globals(stream)
    if found.encrypted:
        raise password_protected()
    check_sheets(stream, found.sheet_offsets, max_cells)


def check_encrypted_package(path: Path) -> None:
    """Refuse an OLE file holding an encrypted xlsx, xlsb or xlsm with ``password_protected``
    (a damaged one with ``unreadable_file``); return for any other OLE file."""
    with path.open("rb") as fh:
        if CompoundFile(fh, path.stat().st_size).names() & _ENCRYPTED_PACKAGE:
            raise password_protected()


def password_protected() -> StepFailed:
    """The refusal for an encrypted workbook of any kind."""
    return StepFailed("password_protected", "Password-protected workbooks are not supported.")


def macros_not_supported() -> StepFailed:
    """The refusal for a workbook that carries macros (they would be served to others)."""
    return StepFailed(
        "macros_not_supported",
        "Workbooks with macros are not supported; please save it without macros (as .xlsx).",
    )


def damaged(what: str) -> StepFailed:
    """The refusal for a compound file whose structure cannot be right."""
    return StepFailed("unreadable_file", f"The file is damaged: {what}.")


class _Header(NamedTuple):
    version: int
    sector_size: int
    dir_start: int
    minifat_start: int
    minifat_count: int
    difat_start: int
    difat: bytes  # the first 109 DIFAT entries


def _read_header(fh: BinaryIO, size: int) -> tuple[_Header, int]:
    """The checked header and the number of sectors the file holds."""
    raw = fh.read(_HEADER_BYTES)
    if len(raw) < _HEADER_BYTES or not raw.startswith(OLE_MAGIC):
        raise damaged("its OLE header is incomplete")
    fields = _HEADER.unpack_from(raw)
    version, order, shift, mini_shift, dir_count, fat_count, dir_start = fields[2:9]
    minifat_start, minifat_count, difat_start, difat_count = fields[11:15]
    if order != 0xFFFE or shift not in (9, 12) or mini_shift != 6 or version not in (3, 4):
        raise damaged("its OLE header is not a version 3 or 4 compound file header")
    sector_size = 1 << shift
    sectors = max(0, -(-(size - sector_size) // sector_size))
    counts = {"FAT": fat_count, "miniFAT": minifat_count, "DIFAT": difat_count}
    for what, count in {**counts, "directory": dir_count}.items():
        if count > sectors:
            raise damaged(f"it claims {count:,} {what} sectors but holds only {sectors:,} sectors")
    if int.from_bytes(raw[62:66], "little") > _MAX_DIFAT_RESERVE:
        raise damaged("its header's miniFAT fields hold values no real file has")
    header = _Header(
        version, sector_size, dir_start, minifat_start, minifat_count, difat_start, raw[76:]
    )
    return header, sectors


class CompoundFile:
    """A compound file whose header, FAT, miniFAT and directory have been checked."""

    def __init__(self, fh: BinaryIO, size: int) -> None:
        self._fh = fh
        header, self.sectors = _read_header(fh, size)
        self.version = header.version
        self.sector_size = header.sector_size
        self.fat = self._load_fat(header.difat, header.difat_start)
        self.entries = self._load_directory(header.dir_start)
        root = self.entries[0]
        self.minifat: array[int] = array("I")
        self.ministream = b""
        if header.minifat_count > 0:
            length = header.minifat_count * self.sector_size
            self.minifat = _words(self._read_chain(header.minifat_start, self.fat, length))
            self.ministream = self._read_chain(root.start, self.fat, root.size)

    def find(self, names: Sequence[str]) -> Entry | None:
        """The entry calamine would read for the first of ``names`` present, or None."""
        for name in names:
            found = next((e for e in self.entries if e.name == name), None)
            if found is not None:
                return found
        return None

    def names(self) -> set[str]:
        """The names of every used entry (storages and streams)."""
        return {e.name for e in self.entries if e.kind != 0}

    def read(self, entry: Entry) -> bytes:
        """A stream's bytes through its checked chain (mini stream below 4096 bytes)."""
        if entry.size == 0:
            return b""
        if entry.size < _MINI_CUTOFF:
            return self._read_mini(entry.start, entry.size)
        return self._read_chain(entry.start, self.fat, entry.size)

    # --- structure ----------------------------------------------------------------------

    def _load_fat(self, difat: bytes, difat_start: int) -> array[int]:
        """The FAT, from the sectors the DIFAT lists (header, then the DIFAT chain)."""
        fat: array[int] = array("I")
        listed: set[int] = set()
        self._add_fat_sectors(_words(difat), fat, listed)
        seen: set[int] = set()
        sector = difat_start
        while sector < _FIRST_MARKER:  # the last word of each DIFAT sector links the next
            self._check_sector(sector, seen, "the DIFAT chain")
            words = _words(self._sector(sector))
            if not words:
                break
            sector = words.pop()
            self._add_fat_sectors(words, fat, listed)
        del fat[self.sectors :]  # entries past the file's last sector map nothing
        return fat

    def _add_fat_sectors(self, numbers: array[int], fat: array[int], listed: set[int]) -> None:
        for number in numbers:
            if number >= _DIFSECT:
                continue
            if number >= self.sectors:
                raise damaged(f"its FAT lives in sector {number:,}, past the end of the file")
            if number in listed:  # calamine would read it again, growing its FAT each time
                raise damaged(f"its DIFAT lists FAT sector {number:,} twice")
            listed.add(number)
            fat.extend(_words(self._sector(number)))

    def _load_directory(self, start: int) -> list[Entry]:
        raw = self._read_chain(start, self.fat, None)
        if len(raw) // _ENTRY_BYTES > _MAX_ENTRIES:
            raise damaged(f"its OLE directory holds more than {_MAX_ENTRIES:,} entries")
        entries = []
        for at in range(0, len(raw) - _ENTRY_BYTES + 1, _ENTRY_BYTES):
            name, _, kind, start_sector, size = _ENTRY.unpack_from(raw, at)
            if self.sector_size == 512:
                size &= 0xFFFFFFFF  # version 3 files may leave garbage in the high half
            text = name.decode("utf-16-le", "replace").split("\x00", 1)[0]
            entries.append(Entry(text, kind, start_sector, size))
        if not entries or entries[0].kind != _ROOT:
            raise damaged("its OLE directory has no root entry")
        return entries

    def _check_sector(self, sector: int, seen: set[int], chain: str) -> None:
        if sector >= self.sectors:
            raise damaged(f"{chain} points to sector {sector:,}, past the end of the file")
        if sector in seen:
            raise damaged(f"{chain} loops back to sector {sector:,}")
        seen.add(sector)

    def _sector(self, number: int) -> bytes:
        self._fh.seek((number + 1) * self.sector_size)
        return self._fh.read(self.sector_size)

    def _read_chain(self, start: int, table: array[int], size: int | None) -> bytes:
        """Follow a FAT chain from ``start`` for ``size`` bytes (None: to its end)."""
        chain: list[int] = []
        seen: set[int] = set()
        sector = start
        while sector != ENDOFCHAIN and (size is None or len(chain) * self.sector_size < size):
            self._check_sector(sector, seen, "a sector chain")
            if sector >= len(table):
                raise damaged(f"sector {sector:,} is not mapped by its FAT")
            chain.append(sector)
            sector = table[sector]
        data = b"".join(self._runs(chain))
        return data if size is None else data[:size]

    def _runs(self, chain: list[int]) -> Iterator[bytes]:
        """The chain's sectors, each run of consecutive ones in one read."""
        at = 0
        while at < len(chain):
            end = at + 1
            while end < len(chain) and chain[end] == chain[end - 1] + 1:
                end += 1
            self._fh.seek((chain[at] + 1) * self.sector_size)
            yield self._fh.read((end - at) * self.sector_size)
            at = end

    def _read_mini(self, start: int, size: int) -> bytes:
        parts: list[bytes] = []
        seen: set[int] = set()
        sector = start
        while sector != ENDOFCHAIN and len(parts) * _MINI_SECTOR < size:
            if sector in seen:
                raise damaged(f"a mini sector chain loops back to sector {sector:,}")
            seen.add(sector)
            end = (sector + 1) * _MINI_SECTOR
            if sector >= len(self.minifat) or end > len(self.ministream):
                raise damaged(f"mini sector {sector:,} is outside the mini stream")
            parts.append(self.ministream[end - _MINI_SECTOR : end])
            sector = self.minifat[sector]
        return b"".join(parts)[:size]


def _words(data: bytes) -> array[int]:
    """Little-endian 32-bit words (a trailing partial word is ignored, as calamine does)."""
    words = array("I", data[: len(data) // 4 * 4])
    if sys.byteorder == "big":
        words.byteswap()
    return words
