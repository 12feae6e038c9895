"""What a workbook upload really is, judged by its bytes whatever its name says.

Systems export xlsx under an .xls name and people rename files, so a workbook's kind is never
taken from its name (the name only tells csv from a workbook):

- an OLE2 compound file is an xls (``cfb`` then tells a workbook from a Word document or an
  encrypted xlsx, which are OLE files too);
- a zip holding ``mimetype`` but no ``[Content_Types].xml`` is an OpenDocument file
  (``opendocument`` checks it is a spreadsheet);
- any other zip is an OOXML package, whose own content types say xlsx or xlsb (``package``);
- text is refused with a message saying what it looks like: "Excel" exports are often HTML or
  csv named .xls;
- anything else is refused as ``not_a_spreadsheet``.
"""

from __future__ import annotations

import codecs
import zipfile
from pathlib import Path
from typing import Literal

from chatflow.failures import StepFailed
from chatflow.spreadsheets.cfb import OLE_MAGIC

Container = Literal["zip", "ole", "empty", "text", "other"]
Family = Literal["xls", "ods", "ooxml"]

ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_TEXT_SAMPLE = 4096
_TEXT_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# Bytes that never occur in text (C0 controls other than tab, line feed, form feed, CR).
_BINARY = bytes(set(range(32)) - {9, 10, 12, 13})


def sniff_container(path: Path) -> Container:
    """What the file's first bytes say it is."""
    with path.open("rb") as fh:
        head = fh.read(_TEXT_SAMPLE)
    if not head:
        return "empty"
    if head.startswith(ZIP_MAGICS):
        return "zip"
    if head.startswith(OLE_MAGIC):
        return "ole"
    if head.startswith(_TEXT_BOMS) or not any(byte in _BINARY for byte in head):
        return "text"
    return "other"


def workbook_family(path: Path) -> Family:
    """Which gate a workbook upload goes through; refuses what is no workbook at all."""
    container = sniff_container(path)
    if container == "ole":
        return "xls"
    if container == "zip":
        return _zip_family(path)
    if container == "empty":
        raise StepFailed("empty_file", "The file is empty.")
    if container == "text":
        raise StepFailed("not_a_spreadsheet", _text_message(path))
    raise StepFailed(
        "not_a_spreadsheet", "The file is not a workbook (xlsx, xls, xlsb or ods) nor csv."
    )


def _zip_family(path: Path) -> Family:
    try:
        with zipfile.ZipFile(path) as archive:
            names = {name.replace("\\", "/").lstrip("/").lower() for name in archive.namelist()}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        return "ooxml"  # the OOXML gate names the damage
    if "mimetype" in names and "[content_types].xml" not in names:
        return "ods"
    return "ooxml"


def _text_message(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(_TEXT_SAMPLE)
    start = head.decode("utf-8", "ignore").lstrip("\ufeff \t\r\n\x00")
    if start.startswith("<"):
        return (
            "The file is HTML or XML text, not a workbook (some programs export such files "
            "under an Excel name): open it in a spreadsheet program and save it as .xlsx."
        )
    return (
        "The file is plain text, not a workbook (some programs export csv under an Excel "
        "name): if it is csv or tab-separated, upload it with a .csv name."
    )
