"""Uploads, listings, downloads and deletion of a chat's files."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from chatflow import filenames
from chatflow.api.body_limit import streams_body
from chatflow.api.deps import (
    BaseUrl,
    FileName,
    IdempotencyKey,
    OwnedChat,
    Owner,
    RuntimeDep,
    errors,
)
from chatflow.api.error_codes import INSPECTION
from chatflow.api.schemas import Deleted, Envelope, FileOut
from chatflow.services import files
from chatflow.spreadsheets.csv_text import DELIMITER_NAMES, DELIMITERS
from chatflow.uploads import MAX_PARTS

router = APIRouter(prefix="/chat/workflows/{chat_id}", tags=["files"])

_UPLOAD_ERRORS = (
    *("chat_not_found", "invalid_filename", "no_file", "malformed_multipart", "too_many_parts"),
    *("field_too_large", "invalid_idempotency_key", "upload_stalled", "idempotency_in_progress"),
    *("file_too_large", "expected_multipart", "unsupported_file_type", "invalid_delimiter"),
    *("idempotency_key_reused", *INSPECTION, "shutting_down", "disk_full"),
)

# The body the upload route reads itself (uploads.py): the accepted extensions and media types
# come from the one table of kinds (filenames.py), the delimiters from the csv reader's.
_UPLOADED_MEDIA_TYPES = sorted({filenames.MEDIA_TYPES[kind] for kind in filenames.KINDS.values()})
_EXTENSIONS = ", ".join(sorted(filenames.KINDS))
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_PARTS,
                            "items": {"type": "string", "format": "binary"},
                            "description": f"one or more parts named 'file' ({MAX_PARTS} "
                            "parts at most, fields included, else 400 too_many_parts), each a "
                            f"spreadsheet named with one of {_EXTENSIONS} (else 415 "
                            "unsupported_file_type); its content decides how it is read",
                        },
                        "delimiter": {
                            "type": "string",
                            "enum": [*DELIMITERS, *DELIMITER_NAMES, ""],
                            "description": "csv delimiter ('tab' or '\\t' for a tab); empty or "
                            "absent: detected (else 422 invalid_delimiter)",
                        },
                    },
                },
                "encoding": {"file": {"contentType": ", ".join(_UPLOADED_MEDIA_TYPES)}},
            }
        },
    }
}


@router.post(
    "/upload",
    status_code=201,
    response_model=Envelope[list[FileOut]],
    responses=errors(*_UPLOAD_ERRORS),
    openapi_extra=_UPLOAD_BODY,
)
@streams_body  # its own limits: CHATFLOW_MAX_UPLOAD_MB per file, parts, fields (uploads.py)
async def upload(
    chat: OwnedChat,
    request: Request,
    response: Response,
    rt: RuntimeDep,
    owner: Owner,
    base: BaseUrl,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, object]:
    """Upload one or more spreadsheets (multipart field ``file``); each becomes a new version.

    The answer's ``Server-Timing`` header says how long the slowest file waited for its
    inspection process (``inspect-wait``) and how long its inspection took (``inspect``)."""
    uploaded = await files.upload(
        rt=rt,
        owner=owner,
        chat_id=chat.id,
        body=request.stream(),
        content_type=request.headers.get("content-type", ""),
        base=base,
        idempotency_key=idempotency_key,
    )
    if (timing := uploaded.server_timing()) is not None:
        response.headers["Server-Timing"] = timing
    return {"data": uploaded.files}


@router.get("/files", response_model=Envelope[list[FileOut]], responses=errors("chat_not_found"))
async def list_files(
    chat: OwnedChat, rt: RuntimeDep, owner: Owner, base: BaseUrl
) -> dict[str, object]:
    """List uploaded and produced files, every version."""
    return {"data": await files.list_files(rt=rt, owner=owner, chat_id=chat.id, base=base)}


@router.get(
    "/files/{filename}",
    response_class=FileResponse,
    responses={
        200: {
            "content": {
                media_type: {"schema": {"type": "string", "format": "binary"}}
                # Generated clients read the body as the first type says: octet-stream is bytes
                # (openapi-python-client would read a spreadsheet type as text).
                for media_type in ("application/octet-stream", *filenames.MEDIA_TYPES.values())
            },
            "description": "the file's bytes, with its media type",
        },
        **errors("chat_not_found", "invalid_filename", "file_not_found"),
    },
)
async def download(
    chat: OwnedChat,
    filename: FileName,
    rt: RuntimeDep,
    owner: Owner,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> FileResponse:
    """Download a file (its latest version, or ``?version=N``)."""
    row, path = await files.locate(
        rt=rt, owner=owner, chat_id=chat.id, name=filename, version=version
    )
    return FileResponse(
        path,
        media_type=row.media_type,
        filename=row.name,
        headers={"X-Content-Type-Options": "nosniff", "ETag": f'"{row.sha256}"'},
    )


@router.delete(
    "/files/{filename}",
    response_model=Envelope[Deleted],
    responses=errors("chat_not_found", "invalid_filename", "file_not_found", "disk_full"),
)
async def delete_file(
    chat: OwnedChat,
    filename: FileName,
    rt: RuntimeDep,
    owner: Owner,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> dict[str, object]:
    """Delete every version of a file, or only ``?version=N``."""
    count = await files.delete(rt=rt, owner=owner, chat_id=chat.id, name=filename, version=version)
    return {"data": {"deleted": count}}
