"""Display names of files: what a user may call a file, and what kind of file it is.

Names are only labels (bytes are stored under generated names), but they travel back in
Content-Disposition headers, transcripts and other tools' file systems, so anything that could
act as a path, or that a common platform cannot store, is refused outright.
"""

from __future__ import annotations

import unicodedata
from pathlib import PurePosixPath

from chatflow.errors import BadRequest

MAX_NAME_LENGTH = 255
_WINDOWS_RESERVED = {
    "CON", "PRN", "AUX", "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}  # fmt: skip
# Bidirectional overrides make "evil\u202excl.exe" display as "evilexe.lcx".
_BIDI_CONTROLS = {*map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}

KINDS = {".xlsx": "xlsx", ".xlsm": "xlsx", ".csv": "csv", ".tsv": "csv"}
MEDIA_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv",
}


def problem(name: str) -> str | None:
    """Why ``name`` is not an acceptable file name, or None if it is."""
    if not name or not name.strip():
        return "file name is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"file name is longer than {MAX_NAME_LENGTH} characters"
    # NFKC folds look-alikes (fullwidth solidus, one-dot leaders...) into what they mimic.
    folded = unicodedata.normalize("NFKC", name)
    for candidate in {name, folded}:
        if "/" in candidate or "\\" in candidate:
            return "file name must not contain '/' or '\\'"
        if candidate in {".", ".."} or candidate.startswith(".."):
            return "file name must not be '.' or start with '..'"
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in candidate):
            return "file name must not contain control characters"
        if ":" in candidate:
            return "file name must not contain ':' (drive letters, alternate data streams)"
    if any(ch in _BIDI_CONTROLS for ch in name):
        return "file name must not contain bidirectional override characters"
    if name != name.strip() or name.endswith("."):
        return "file name must not start or end with spaces or end with '.'"
    if PurePosixPath(folded).stem.upper().split(".")[0] in _WINDOWS_RESERVED:
        return "file name is a reserved device name on Windows"
    return None


def validate(name: str) -> str:
    """``name`` in NFC form, or BadRequest with code ``invalid_filename``."""
    reason = problem(name)
    if reason is not None:
        raise BadRequest(reason, code="invalid_filename", details={"filename": name})
    return unicodedata.normalize("NFC", name)


def kind_of(name: str) -> str | None:
    """ "xlsx" or "csv" from the name's extension; None for anything else."""
    return KINDS.get(PurePosixPath(name).suffix.lower())
