"""Read zip members ourselves, in bounded pieces, under one byte budget per archive.

Declared sizes and CRCs are never used for sizing: only bytes actually inflated count, so a
member that lies about its size is judged by what it really holds.  Shared by the container
gate (``inspection``), the package map (``package``) and the standard-layout copy
(``package_view``).
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from chatflow.failures import StepFailed

DEFAULT_MAX_CELLS = 5_000_000
DEFAULT_MAX_UNCOMPRESSED_MB = 200

_IN_CHUNK = 64 * 1024
OUT_CHUNK = 1024 * 1024
# Inflation ratios are only judged past this size: tiny parts compress absurdly well.
_RATIO_FLOOR = 16 * 1024 * 1024
LOCAL_HEADER = struct.Struct("<4s22xHH")


@dataclass(frozen=True)
class GateLimits:
    """What a workbook may expand to before calamine is allowed to read it."""

    max_cells: int = DEFAULT_MAX_CELLS
    max_uncompressed_mb: int = DEFAULT_MAX_UNCOMPRESSED_MB
    max_ratio: int = 500
    max_members: int = 10_000


class Budget:
    """Bytes inflated so far across the whole archive."""

    def __init__(self, limits: GateLimits) -> None:
        self.limit = limits.max_uncompressed_mb * 1024 * 1024
        self.used = 0

    def spend(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise StepFailed(
                "zip_bomb",
                f"The workbook expands to more than {self.limit // (1024 * 1024)} MB.",
                # The only zip_bomb a setting governs: the server names it in its answer.
                {"limit": "max_uncompressed_mb"},
            )


def list_members(path: Path, limits: GateLimits) -> list[zipfile.ZipInfo]:
    """The archive's members, or StepFailed: not a complete zip, or absurdly many parts."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise StepFailed(
            "unreadable_file", "The file is damaged or truncated (not a complete zip archive)."
        ) from exc
    if len(members) > limits.max_members:
        raise StepFailed("zip_bomb", f"The archive has {len(members):,} parts; that is absurd.")
    return members


def member_pieces(
    fh: BinaryIO, member: zipfile.ZipInfo, budget: Budget, limits: GateLimits
) -> Iterator[bytes]:
    """The member's inflated bytes in pieces of at most OUT_CHUNK, each paid for first."""
    name = member.filename
    if member.flag_bits & 0x1:
        raise StepFailed("unreadable_file", f"Part '{name}' is encrypted inside the zip.")
    if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise StepFailed(
            "unreadable_file", f"Part '{name}' uses unsupported compression {member.compress_type}."
        )
    inflater = (
        zlib.decompressobj(-zlib.MAX_WBITS)
        if member.compress_type == zipfile.ZIP_DEFLATED
        else None
    )
    consumed = produced = 0
    for chunk in compressed_chunks(fh, member):
        consumed += len(chunk)
        for piece in _inflate(inflater, chunk, name):
            produced += len(piece)
            budget.spend(len(piece))
            if produced > _RATIO_FLOOR and produced > limits.max_ratio * consumed:
                raise StepFailed(
                    "zip_bomb", f"Part '{name}' inflates more than {limits.max_ratio}:1."
                )
            yield piece
        if inflater is not None and inflater.eof:
            break
    if inflater is not None and not inflater.eof:
        raise StepFailed("unreadable_file", f"Part '{name}' is truncated or corrupt.")


def read_member(
    fh: BinaryIO, member: zipfile.ZipInfo, budget: Budget, limits: GateLimits, cap: int
) -> bytes:
    """The whole inflated member, refused once it passes ``cap`` bytes."""
    data = bytearray()
    for piece in member_pieces(fh, member, budget, limits):
        data += piece
        if len(data) > cap:
            raise StepFailed(
                "unreadable_file",
                f"Part '{member.filename}' is larger than {cap // (1024 * 1024)} MB, "
                "more than any real one of its kind.",
            )
    return bytes(data)


def data_offset(fh: BinaryIO, member: zipfile.ZipInfo) -> int:
    """Where the member's compressed bytes start (after its local header)."""
    fh.seek(member.header_offset)
    header = fh.read(LOCAL_HEADER.size)
    if len(header) < LOCAL_HEADER.size:
        raise StepFailed("unreadable_file", f"Part '{member.filename}' is truncated.")
    magic, name_len, extra_len = LOCAL_HEADER.unpack(header)
    if magic != b"PK\x03\x04":
        raise StepFailed("unreadable_file", f"Part '{member.filename}' has a corrupt header.")
    return member.header_offset + LOCAL_HEADER.size + name_len + extra_len


def compressed_chunks(fh: BinaryIO, member: zipfile.ZipInfo) -> Iterator[bytes]:
    """The member's raw bytes, bounded by its declared size and the end of the file."""
    fh.seek(data_offset(fh, member))
    remaining = member.compress_size
    while remaining > 0:
        chunk = fh.read(min(_IN_CHUNK, remaining))
        if not chunk:
            return
        remaining -= len(chunk)
        yield chunk


def _inflate(inflater: Any, chunk: bytes, name: str) -> Iterator[bytes]:
    """Decompress ``chunk`` in pieces of at most OUT_CHUNK bytes (stored parts pass through)."""
    if inflater is None:
        yield chunk
        return
    data = chunk
    while not inflater.eof:
        try:
            piece = inflater.decompress(data, OUT_CHUNK)
        except zlib.error as exc:
            raise StepFailed("unreadable_file", f"Part '{name}' is corrupt.") from exc
        if piece:
            yield piece
        data = inflater.unconsumed_tail
        if not data and len(piece) < OUT_CHUNK:
            return  # input used up and no output held back
