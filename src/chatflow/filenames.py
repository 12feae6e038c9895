"""Display names of files: what a user may call a file, and what kind of file it is.

Names are only labels (bytes are stored under generated names), but they travel back in
Content-Disposition headers, transcripts and other tools' file systems, so anything that could
act as a path, or that a common platform cannot store, is refused outright.  So is any character
that is invisible or changes how the rest displays (Unicode categories Cc, Cf, Cs, Zl, Zp and
unassigned Cn, judged by Python's Unicode database): U+0085, U+2028/2029, zero-width spaces and
joiners, bidi controls and marks, soft hyphens.  Names derived from cell values replace them
with ``scrub`` instead.
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
# Controls (C0, C1: U+0085 is a line break), format characters (zero-width, bidi marks and
# isolates, soft hyphen, BOM, tags), lone surrogates, line and paragraph separators, and
# code points without a meaning yet: none has a visible shape of its own.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Cn"})
_NAMELESS = {"Cc": "a control character", "Cs": "a lone surrogate", "Cn": "unassigned"}

# ``problem``'s rules as one regular expression, exact for ASCII names (tests/test_filenames.py
# checks them against each other); beyond ASCII, ``problem`` also refuses the invisible and
# look-alike characters a pattern cannot name portably. For documents (OpenAPI), not for checks.
_RESERVED_PATTERN = "|".join(
    "".join(f"[{ch}{ch.lower()}]" if ch.isalpha() else ch for ch in word)
    for word in ("CON", "PRN", "AUX", "NUL", "COM[1-9]", "LPT[1-9]")
)
NAME_PATTERN = (
    rf"^(?!\.\.)(?! )(?!(?:{_RESERVED_PATTERN})(?:\.|$))"
    # The end is "no character follows": Python's "$" also matches before a final newline.
    r"[^\x00-\x1f\x7f/\\:]*[^\x00-\x1f\x7f/\\: .](?![\s\S])"
)

# What an upload's name says it is; the inspection then decides by content (a workbook saved
# under another workbook's extension is read as what it is, see spreadsheets/sniffing.py).
KINDS = {
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".xls": "xls",
    ".xlsb": "xlsb",
    ".ods": "ods",
    ".csv": "csv",
    ".tsv": "csv",
}
# Kinds read as workbooks of sheets (by calamine); csv is the only other kind.
WORKBOOK_KINDS = frozenset({"xlsx", "xls", "xlsb", "ods"})
# The one table of media types, for uploads, outputs and downloads alike.
MEDIA_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "xls": "application/vnd.ms-excel",
    "xlsb": "application/vnd.ms-excel.sheet.binary.macroEnabled.12",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",  # written by steps, never uploaded
}


def problem(name: str, *, stored: bool = False) -> str | None:
    """Why ``name`` is not an acceptable file name, or None if it is; ``stored``: a name to look
    up, which may hold the hidden characters names could have before they were refused."""
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
        # A stored name may hold what was refused only later, but never a C0 control or DEL
        # (always refused) or a lone surrogate (no database can hold one).
        hidden = _first_never_stored(candidate) if stored else first_hidden(candidate)
        if hidden is not None and hidden not in _BIDI_CONTROLS:
            return (
                f"file name must not contain {describe_char(hidden)}: control, invisible "
                "(format) and line-separator characters are refused"
            )
        if ":" in candidate:
            return "file name must not contain ':' (drive letters, alternate data streams)"
    if any(ch in _BIDI_CONTROLS for ch in name):
        return "file name must not contain bidirectional override characters"
    if name != name.strip() or name.endswith("."):
        return "file name must not start or end with spaces or end with '.'"
    if PurePosixPath(folded).stem.upper().split(".")[0] in _WINDOWS_RESERVED:
        return "file name is a reserved device name on Windows"
    return None


def first_hidden(text: str) -> str | None:
    """The first character of ``text`` in a refused category, or None."""
    return next((ch for ch in text if unicodedata.category(ch) in REFUSED_CATEGORIES), None)


def _first_never_stored(text: str) -> str | None:
    return next(
        (ch for ch in text if ord(ch) < 32 or ch == "\x7f" or 0xD800 <= ord(ch) <= 0xDFFF), None
    )


def describe_char(ch: str) -> str:
    """``ch`` as "U+200B (ZERO WIDTH SPACE)", readable however it would display."""
    name = unicodedata.name(ch, "") or _NAMELESS[unicodedata.category(ch)]
    return f"U+{ord(ch):04X} ({name})"


def scrub(text: str, replacement: str = "_") -> str:
    """``text`` with each character of a refused category replaced."""
    return "".join(
        replacement if unicodedata.category(ch) in REFUSED_CATEGORIES else ch for ch in text
    )


def validate(name: str, *, stored: bool = False) -> str:
    """``name`` in NFC form, or BadRequest with code ``invalid_filename`` (``stored``: as in
    ``problem``)."""
    reason = problem(name, stored=stored)
    if reason is not None:
        # Lone surrogates (undecodable bytes) cannot go out as UTF-8 JSON: shown as \udcxx.
        shown = name.encode("utf-8", "backslashreplace").decode("utf-8")
        raise BadRequest(reason, code="invalid_filename", details={"filename": shown})
    return unicodedata.normalize("NFC", name)


def kind_of(name: str) -> str | None:
    """The kind ("xlsx", "xls", "xlsb", "ods" or "csv") the name's extension claims; None for
    anything else."""
    return KINDS.get(PurePosixPath(name).suffix.lower())
