"""Files of a chat: streamed uploads (inspected in a sandbox), versions, downloads, deletion."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import Connection

from chatflow import filenames
from chatflow.db.models import StoredFile
from chatflow.errors import Invalid, NotFound, Unavailable, UnsupportedMediaType
from chatflow.repositories import files as files_repo
from chatflow.runtime import Runtime
from chatflow.services import chats, events, idempotency, messages
from chatflow.services.idempotency import fingerprint
from chatflow.services.upload_limits import cell_limit, limit_hit
from chatflow.services.views import file_view
from chatflow.spreadsheets.csv_text import DELIMITER_NAMES, DELIMITERS
from chatflow.spreadsheets.inspection_pool import Inspection, PoolClosed
from chatflow.spreadsheets.sandbox import InspectionRejected
from chatflow.spreadsheets.workbook_files import alias_path
from chatflow.uploads import ReceivedFile, UploadLimits, receive_files


@dataclass(frozen=True)
class Uploaded:
    """The stored files' views, and how long each phase of the upload took (seconds).

    Phases: ``receive`` (the body to temp files), ``inspect-wait`` (the slowest file's wait
    for an inspection process), ``inspect`` (the slowest file's inspection), ``store`` (rows,
    files, events).  A replayed upload measured nothing."""

    files: list[dict[str, Any]]
    phases: dict[str, float] = field(default_factory=dict)

    def server_timing(self) -> str | None:
        """A ``Server-Timing`` header value (milliseconds), None when nothing was measured."""
        if not self.phases:
            return None
        return ", ".join(f"{name};dur={s * 1000:.1f}" for name, s in self.phases.items())


async def _inspect(
    rt: Runtime, received: ReceivedFile, kind: str, delimiter: str | None
) -> Inspection:
    cells = await asyncio.to_thread(cell_limit, rt.settings, received.temp_path, kind)
    try:
        inspection = await rt.inspections.inspect(
            received.temp_path,
            kind,
            max_cells=int(cells.value),
            max_uncompressed_mb=rt.settings.max_uncompressed_mb,
            delimiter=delimiter if kind == "csv" else None,
        )
    except InspectionRejected as exc:
        message = f"file {received.filename!r} was refused: {exc.message}"
        details: dict[str, Any] = {"filename": received.filename}
        limit = limit_hit(rt.settings, exc.code, exc.details, cells)
        if limit is not None:
            message = f"{message} {limit.sentence()}"
            details.update(limit.details())
        raise Invalid(message, code=exc.code, details=details) from None
    except PoolClosed:
        raise Unavailable(
            "the server is shutting down; retry shortly",
            code="shutting_down",
            headers={"Retry-After": "5"},
        ) from None
    rt.metrics.upload_inspected(inspection.took_s)
    return inspection


def _delimiter(fields: dict[str, str]) -> str | None:
    """The optional ``delimiter`` form field (csv only; detected when absent)."""
    value = fields.get("delimiter")
    if value is None or value == "":
        return None
    value = DELIMITER_NAMES.get(value, value)
    if value not in DELIMITERS:
        raise Invalid(
            "delimiter must be one of , ; | or tab",
            code="invalid_delimiter",
            details={"delimiter": value},
        )
    return value


def _check_names(received: list[ReceivedFile]) -> list[tuple[ReceivedFile, str, str]]:
    """(file, display name, kind) for each upload, or the first problem as a 4xx."""
    checked = []
    for item in received:
        name = filenames.validate(item.filename)
        kind = filenames.kind_of(name)
        if kind is None:
            raise UnsupportedMediaType(
                f"file {name!r}: only spreadsheets are accepted: "
                f"{', '.join(sorted(filenames.KINDS))}",
                code="unsupported_file_type",
                details={"filename": name},
            )
        checked.append((item, name, kind))
    return checked


async def upload(
    *,
    rt: Runtime,
    chat_id: str,
    owner: str | None,
    body: AsyncIterator[bytes],
    content_type: str,
    base: str,
    idempotency_key: str | None = None,
) -> Uploaded:
    """Store every file of a multipart body as a new version; all of them or none.

    With an ``idempotency_key``, a retry of the same upload returns the first answer and
    stores nothing new.
    """
    chat = await chats.require(rt=rt, chat_id=chat_id, owner=owner)
    started = time.monotonic()
    upload_body = await receive_files(
        body,
        content_type,
        new_temp=lambda: rt.store.temp_path(chat.id),
        limits=UploadLimits(
            max_file_bytes=rt.settings.max_upload_bytes,
            idle_timeout_s=rt.settings.upload_idle_timeout_s,
        ),
    )
    received = upload_body.files
    delimiter = _delimiter(upload_body.fields)
    digest = fingerprint([(item.filename, item.sha256, item.size) for item in received], delimiter)
    try:
        async with idempotency.keyed(
            rt=rt, owner=owner, key=idempotency_key, scope=f"upload:{chat.id}", digest=digest
        ) as attempt:
            if attempt.replay is not None:
                return Uploaded(list(attempt.replay[1]))
            phases = {"receive": time.monotonic() - started}
            uploaded = await _store(rt, chat.id, received, delimiter, base, phases)
            attempt.remember(201, to_jsonable_python(uploaded.files))
            return uploaded
    finally:
        for item in received:
            item.temp_path.unlink(missing_ok=True)
            for kind in filenames.WORKBOOK_KINDS:  # left if the inspection child was killed
                alias_path(item.temp_path, kind).unlink(missing_ok=True)


async def _store(
    rt: Runtime,
    chat_id: str,
    received: list[ReceivedFile],
    delimiter: str | None,
    base: str,
    phases: dict[str, float],
) -> Uploaded:
    """Inspect every file, then record the files, their events and the upload's message in
    one transaction: a stored upload is always announced, and a refused one leaves nothing."""
    try:
        checked = _check_names(received)
        inspections = await asyncio.gather(
            *(_inspect(rt, item, kind, delimiter) for item, _, kind in checked)
        )
        inspected = time.monotonic()
        rows = [
            _file_row(rt, chat_id, name, item, claimed, inspection.info, delimiter)
            for (item, name, claimed), inspection in zip(checked, inspections, strict=True)
        ]
        moved: list[Path] = []
        bodies = [
            events.event_body(
                chat_id=chat_id,
                type="file_uploaded",
                message="",  # with_row's, once the version is known
                with_row=partial(_record_file, rt, row, item.temp_path, base, moved),
            )
            for row, (item, _, _) in zip(rows, checked, strict=True)
        ]
        bodies.append(
            events.event_body(
                chat_id=chat_id,
                type="message_added",
                message="",
                with_row=partial(_record_message, rows, base),
            )
        )
        await _publish(rt, chat_id, bodies, moved)
    except BaseException:
        for item in received:
            item.temp_path.unlink(missing_ok=True)
        raise
    phases["inspect-wait"] = max(i.waited_s for i in inspections)
    phases["inspect"] = max(i.took_s for i in inspections)
    phases["store"] = time.monotonic() - inspected
    return Uploaded([file_view(row, base) for row in rows], phases)


def _file_row(
    rt: Runtime,
    chat_id: str,
    name: str,
    item: ReceivedFile,
    claimed: str,
    info: dict[str, Any],
    delimiter: str | None,
) -> StoredFile:
    """The row of an inspected file, its version still to be numbered."""
    # A workbook is what its bytes are (an xlsx named .xls is an xlsx); it is stored under
    # that kind's extension, which is how calamine picks its reader.
    kind = info.get("kind") or claimed
    return StoredFile(
        chat_id=chat_id,
        name=name,
        storage_name=rt.store.new_storage_name(f".{kind}"),
        kind=kind,
        media_type=filenames.MEDIA_TYPES[kind],
        size=item.size,
        sha256=item.sha256,
        sheets=info.get("sheets"),
        columns=info.get("columns"),
        row_count=info.get("row_count"),
        delimiter=delimiter if kind == "csv" else None,
        source="upload",
    )


def _record_file(
    rt: Runtime, row: StoredFile, temp: Path, base: str, moved: list[Path], conn: Connection
) -> dict[str, Any]:
    """In the upload's transaction: the file's row, and its bytes moved to their place (before
    the commit; ``_publish`` removes them if the transaction fails)."""
    files_repo.insert_next_version(conn, row=row)
    moved.append(rt.store.commit(temp, row.chat_id, row.storage_name))
    file = _event_file(file_view(row, base))
    return {"message": f"File '{row.name}' uploaded (version {row.version})", "file": file}


def _record_message(rows: list[StoredFile], base: str, conn: Connection) -> dict[str, Any]:
    """In the upload's transaction, after its files: the transcript's system message."""
    text = "Uploaded " + ", ".join(f"'{row.name}' (v{row.version})" for row in rows)
    data = {"kind": "upload", "files": [_event_file(file_view(row, base)) for row in rows]}
    chat_id = rows[0].chat_id
    entry = messages.record(conn, chat_id=chat_id, role="system", text=text, data=data)
    return {"message": text, **entry}


async def _publish(
    rt: Runtime, chat_id: str, bodies: list[dict[str, Any]], moved: list[Path]
) -> None:
    """Store and announce the upload.  It runs to its end even if the request is cancelled
    meanwhile, and only a failed transaction removes the files it moved."""

    def undo_if_failed(task: asyncio.Future[list[dict[str, Any] | None]]) -> None:
        if not task.cancelled() and task.exception() is not None:
            for path in moved:
                path.unlink(missing_ok=True)

    task = asyncio.ensure_future(events.emit_all(rt.broadcaster, chat_id=chat_id, bodies=bodies))
    task.add_done_callback(undo_if_failed)
    await asyncio.shield(task)


def _event_file(view: dict[str, Any]) -> dict[str, Any]:
    """The JSON-safe subset of a file view that goes into events and messages."""
    keep = ("filename", "version", "size", "sha256", "media_type", "sheets", "columns")
    return {key: view[key] for key in (*keep, "row_count", "download_url")}


async def list_files(
    *, rt: Runtime, chat_id: str, owner: str | None, base: str
) -> list[dict[str, Any]]:
    chat = await chats.require(rt=rt, chat_id=chat_id, owner=owner)
    async with rt.db.read() as session:
        rows = await files_repo.list_for_chat(session, chat_id=chat.id)
    return [file_view(row, base) for row in rows]


async def locate(
    *, rt: Runtime, chat_id: str, owner: str | None, name: str, version: int | None
) -> tuple[StoredFile, Path]:
    """The recorded file and where its bytes are; only names in the database resolve."""
    chat = await chats.require(rt=rt, chat_id=chat_id, owner=owner)
    name = filenames.validate(name, stored=True)
    async with rt.db.read() as session:
        row = await files_repo.get(session, chat_id=chat.id, name=name, version=version)
    if row is None:
        which = f" version {version}" if version is not None else ""
        raise NotFound(f"file {name!r}{which} not found in this chat", code="file_not_found")
    path = rt.store.path(chat.id, row.storage_name)
    if not await asyncio.to_thread(path.is_file):
        raise NotFound(f"file {name!r} is missing from storage", code="file_not_found")
    return row, path


async def delete(
    *, rt: Runtime, chat_id: str, owner: str | None, name: str, version: int | None
) -> int:
    """Delete one version, or every version of ``name``; returns how many were removed."""
    chat = await chats.require(rt=rt, chat_id=chat_id, owner=owner)
    name = filenames.validate(name, stored=True)
    async with rt.db.write() as session:
        storage_names = await files_repo.remove(
            session, chat_id=chat.id, name=name, version=version
        )
    if not storage_names:
        raise NotFound(f"file {name!r} not found in this chat", code="file_not_found")
    with contextlib.suppress(OSError):
        await asyncio.to_thread(rt.store.unlink, chat.id, storage_names)
    return len(storage_names)
