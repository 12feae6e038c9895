"""Streaming multipart/form-data receiver: file parts go straight to temp files on disk.

Starlette's own form parser spools every part to a temp file outside our data dir before the
route sees it, and only then could a size limit apply; this one writes each chunk (in a worker
thread) to a temp file inside the chat's directory, hashing as it goes, and stops as soon as a
limit is crossed.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.message import Message
from email.utils import collapse_rfc2231_value
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from python_multipart.multipart import MultipartParser

from chatflow import storage
from chatflow.errors import (
    BadRequest,
    InsufficientStorage,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MAX_FIELD_BYTES = 64 * 1024
# Parts of one upload, files and fields together; more: 400 too_many_parts.
MAX_PARTS = 20


@dataclass
class ReceivedFile:
    filename: str
    temp_path: Path
    size: int = 0
    sha256: str = ""
    _hasher: Any = field(default_factory=hashlib.sha256, repr=False)
    _handle: IO[bytes] | None = field(default=None, repr=False)


@dataclass
class Received:
    """The files of an upload (in temp files) and its small text fields."""

    files: list[ReceivedFile]
    fields: dict[str, str]


@dataclass
class UploadLimits:
    max_file_bytes: int
    max_parts: int = MAX_PARTS
    idle_timeout_s: float = 30.0  # a body that sends nothing for this long is dropped


def _boundary(content_type: str) -> bytes:
    message = Message()
    message["content-type"] = content_type
    if message.get_content_type() != "multipart/form-data":
        raise UnsupportedMediaType(
            "upload must be multipart/form-data with one or more 'file' parts",
            code="expected_multipart",
        )
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise BadRequest("multipart body has no boundary", code="malformed_multipart")
    return boundary.encode("latin-1")


def _disposition(raw: bytes) -> tuple[str | None, str | None]:
    """(field name, filename) from a Content-Disposition header value, RFC 2231 aware;
    BadRequest ``invalid_filename`` for a filename whose bytes its encoding cannot decode."""
    message = Message()
    message["content-disposition"] = raw.decode("utf-8", errors="surrogateescape")
    name = message.get_param("name", header="content-disposition")
    filename = message.get_filename()
    if filename is not None and not _decodable(raw, message):
        # The email package would put U+FFFD in their place: a name the client never sent,
        # and different names would collapse into one.
        raise BadRequest(
            "file name is not valid text in its encoding (UTF-8 unless filename* names one)",
            code="invalid_filename",
            details={"filename": filename},
        )
    return (name if isinstance(name, str) else None), filename


def _decodable(raw: bytes, message: Message) -> bool:
    """Whether the header is UTF-8 and an RFC 2231 filename decodes in its own charset."""
    param = message.get_param("filename", header="content-disposition")
    try:
        raw.decode("utf-8")
        if isinstance(param, tuple):
            collapse_rfc2231_value(param, errors="strict")
    except UnicodeDecodeError:
        return False
    return True


def _write(handle: IO[bytes], hasher: Any, data: bytes) -> None:
    handle.write(data)
    hasher.update(data)


class _Collector:
    """Parser callbacks: they only record what happened; the async loop does the I/O."""

    def __init__(self) -> None:
        self.header_field = b""
        self.headers: dict[bytes, bytes] = {}
        self.events: list[tuple[str, Any]] = []

    def on_part_begin(self) -> None:
        self.headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        key = self.header_field.lower()
        self.headers[key] = self.headers.get(key, b"") + data[start:end]

    def on_header_end(self) -> None:
        self.header_field = b""

    def on_headers_finished(self) -> None:
        self.events.append(("part", self.headers.get(b"content-disposition", b"")))

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self.events.append(("data", data[start:end]))

    def on_part_end(self) -> None:
        self.events.append(("end", None))

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }


async def receive_files(
    stream: AsyncIterator[bytes],
    content_type: str,
    *,
    new_temp: Callable[[], Path],
    limits: UploadLimits,
) -> Received:
    """Write every ``file`` part of the body to its own temp file; keep small text fields.

    On any error every temp file written so far is removed before the error propagates.
    """
    collector = _Collector()
    parser = MultipartParser(_boundary(content_type), collector.callbacks())
    reception = _Reception(new_temp=new_temp, limits=limits)
    chunks = aiter(stream)
    try:
        while (chunk := await _next_chunk(chunks, limits.idle_timeout_s)) is not None:
            try:
                parser.write(chunk)
            except Exception as exc:  # python-multipart raises its own parse errors
                raise BadRequest(
                    f"malformed multipart body: {exc}", code="malformed_multipart"
                ) from exc
            events, collector.events = collector.events, []
            for kind, value in events:
                await reception.handle(kind, value)
        parser.finalize()
        return reception.finish()
    except BaseException:
        await asyncio.to_thread(_discard, reception.files)
        raise


async def _next_chunk(chunks: AsyncIterator[bytes], idle_timeout_s: float) -> bytes | None:
    """The body's next chunk, None at its end; RequestTimeout when the client goes quiet."""
    try:
        return await asyncio.wait_for(anext(chunks), idle_timeout_s)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        raise RequestTimeout(
            f"the upload stalled: no data for {idle_timeout_s:g} s", code="upload_stalled"
        ) from None


class _Reception:
    """An upload's state between parser events: files written so far and text fields."""

    def __init__(self, *, new_temp: Callable[[], Path], limits: UploadLimits) -> None:
        self.new_temp = new_temp
        self.limits = limits
        self.files: list[ReceivedFile] = []
        self.fields: dict[str, str] = {}
        self.current: ReceivedFile | None = None
        self.field_name: str | None = None
        self.field_value = bytearray()
        self.parts = 0

    async def handle(self, kind: str, value: Any) -> None:
        if kind == "part":
            await self._begin_part(value)
        elif kind == "data":
            await self._data(value)
        elif kind == "end" and self.current is not None:
            await _close(self.current)
            self.current = None
        elif kind == "end" and self.field_name:
            self.fields[self.field_name] = self.field_value.decode("utf-8", errors="replace")

    async def _begin_part(self, disposition: bytes) -> None:
        self.parts += 1
        if self.parts > self.limits.max_parts:
            raise BadRequest(
                f"too many parts in one upload (limit {self.limits.max_parts})",
                code="too_many_parts",
            )
        self.field_name, filename = _disposition(disposition)
        self.field_value.clear()
        if self.field_name == "file" and filename is not None:
            temp = await asyncio.to_thread(self.new_temp)
            self.current = ReceivedFile(filename=filename, temp_path=temp)
            self.files.append(self.current)
            self.current._handle = await asyncio.to_thread(temp.open, "wb")

    async def _data(self, value: bytes) -> None:
        current = self.current
        if current is None:
            self.field_value += value
            if len(self.field_value) > MAX_FIELD_BYTES:
                raise BadRequest("form field too large", code="field_too_large")
            return
        current.size += len(value)
        limit = self.limits.max_file_bytes
        if current.size > limit:
            raise PayloadTooLarge(
                f"file {current.filename!r} is larger than the upload limit of "
                f"{limit // (1024 * 1024)} MB; the setting CHATFLOW_MAX_UPLOAD_MB raises it",
                details={
                    "filename": current.filename,
                    "limit_bytes": limit,
                    "setting": "CHATFLOW_MAX_UPLOAD_MB",
                },
            )
        assert current._handle is not None
        try:
            await asyncio.to_thread(_write, current._handle, current._hasher, value)
        except OSError as exc:
            if exc.errno in storage.DISK_FULL:
                raise InsufficientStorage(
                    "not enough disk space to store the upload; nothing was kept",
                    code="disk_full",
                ) from None
            raise

    def finish(self) -> Received:
        if self.current is not None:
            raise BadRequest("multipart body ended inside a part", code="malformed_multipart")
        if not self.files:
            raise BadRequest(
                "no file in the upload: send one or more multipart parts named 'file'",
                code="no_file",
            )
        return Received(self.files, self.fields)


async def _close(received: ReceivedFile) -> None:
    handle, received._handle = received._handle, None
    if handle is not None:
        await asyncio.to_thread(handle.close)
    received.sha256 = received._hasher.hexdigest()


def _discard(files: list[ReceivedFile]) -> None:
    for received in files:
        if received._handle is not None:
            received._handle.close()
        received.temp_path.unlink(missing_ok=True)
