"""Dry runs: a workflow checked against the real input's columns on a sample, nothing stored."""

from __future__ import annotations

import asyncio
from typing import Any

from chatflow.errors import Invalid
from chatflow.execution.pipeline import simulate
from chatflow.operations.registry import StepFailed
from chatflow.repositories import files as files_repo
from chatflow.runtime import Runtime
from chatflow.services.execution import run_files
from chatflow.services.runs import StepRequest, prepare

SAMPLE_ROWS = 1000
PREVIEW_ROWS = 10


async def dry_run(
    *,
    rt: Runtime,
    chat_id: str,
    owner: str | None,
    steps: list[StepRequest],
    input_name: str | None,
) -> dict[str, Any]:
    """Per step: columns out, rows on the sample and the first rows; 422 at the first failure."""
    prepared = await prepare(
        rt=rt, chat_id=chat_id, owner=owner, steps=steps, input_name=input_name
    )
    async with rt.db.read() as session:
        latest = await files_repo.latest_versions(session, chat_id=prepared.chat_id)
    source = prepared.input_file
    files = run_files(rt, prepared.chat_id, source, latest, sample_rows=SAMPLE_ROWS)
    loop = asyncio.get_running_loop()
    try:
        described = await loop.run_in_executor(
            rt.executor, simulate, prepared.validated, files, PREVIEW_ROWS
        )
    except StepFailed as exc:
        index = exc.details.get("step_index") if isinstance(exc.details, dict) else None
        operation = prepared.validated[index][0].name if index is not None else "?"
        raise Invalid(
            f"steps[{index}] ({operation}): {exc.message}", code=exc.code, details=exc.details
        ) from None
    return {
        "input": {"filename": source.name, "version": source.version},
        "sample_rows": SAMPLE_ROWS,
        "steps": described,
    }
