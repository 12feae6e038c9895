"""Plain-dict views of stored rows, shared by the HTTP API and events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chatflow.db.models import Chat, Message, Run, SavedWorkflow, StoredFile
from chatflow.services import links


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return int((end - start).total_seconds() * 1000)


def file_view(row: StoredFile, base: str) -> dict[str, Any]:
    return {
        "filename": row.name,
        "version": row.version,
        "size": row.size,
        "sha256": row.sha256,
        "media_type": row.media_type,
        "kind": row.kind,
        "sheets": row.sheets,
        "columns": row.columns,
        "row_count": row.row_count,
        "delimiter": row.delimiter,
        "source": row.source,
        "run_id": row.run_id,
        "created_at": row.created_at,
        "download_url": links.file_url(base, row.chat_id, row.name, row.version),
    }


def run_view(run: Run, outputs: list[StoredFile], base: str) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "chat_id": run.chat_id,
        "status": run.status,
        "input": {"filename": run.input_name, "version": run.input_version},
        "steps": [
            {
                "index": step.index,
                "operation": step.operation,
                "arguments": step.arguments,
                "status": step.status,
                "message": step.message,
                "result": step.result,
                "error": step.error,
                "started_at": step.started_at,
                "finished_at": step.finished_at,
                "duration_ms": _ms(step.started_at, step.finished_at),
            }
            for step in run.step_rows
        ],
        "outputs": [file_view(row, base) for row in outputs],
        "error": run.error,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_ms": _ms(run.started_at, run.finished_at),
        "status_url": links.run_url(base, run.chat_id, run.id),
    }


def chat_view(chat: Chat, base: str) -> dict[str, Any]:
    return {
        "chat_id": chat.id,
        "title": chat.title,
        "created_at": chat.created_at,
        "last_seq": chat.last_seq,
        "websocket_url": links.websocket_url(base, chat.id),
    }


def message_dict(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "role": message.role,
        "text": message.text,
        "data": message.data,
        "created_at": message.created_at,
    }


def workflow_view(row: SavedWorkflow) -> dict[str, Any]:
    return {
        "name": row.name,
        "description": row.description,
        "steps": row.steps,
        "source_chat_id": row.source_chat_id,
        "source_run_id": row.source_run_id,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }
