"""The execute request: steps or a saved workflow; dry run, queue, or queue and wait."""

from __future__ import annotations

from typing import Any

from pydantic_core import to_jsonable_python

from chatflow.runtime import Runtime
from chatflow.services import idempotency, links, runs, workflows
from chatflow.services.dry_run import dry_run as simulate
from chatflow.services.runs import StepRequest


async def execute(
    *,
    rt: Runtime,
    owner: str | None,
    chat_id: str,
    steps: list[StepRequest] | None,
    workflow: str | None,
    input_name: str | None,
    wait: bool,
    wait_s: float,
    dry_run: bool,
    base: str,
    idempotency_key: str | None,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, data): 200 dry-run report, 200 finished run (``wait``), or 202 accepted."""
    digest = idempotency.fingerprint(
        [(s.operation, s.arguments) for s in steps or []], workflow, input_name, wait, dry_run
    )
    async with idempotency.keyed(
        rt=rt, owner=owner, key=idempotency_key, scope=f"execute:{chat_id}", digest=digest
    ) as attempt:
        if attempt.replay is not None:
            return attempt.replay[0], dict(attempt.replay[1])
        if steps is None:
            steps = await workflows.steps_of(rt=rt, owner=owner, name=workflow or "")
        if dry_run:
            checked = await simulate(
                rt=rt, owner=owner, chat_id=chat_id, steps=steps, input_name=input_name
            )
            return 200, checked
        run_id, handle = await runs.submit(
            rt=rt, owner=owner, chat_id=chat_id, steps=steps, input_name=input_name, base=base
        )
        if wait and await runs.wait(handle=handle, timeout_s=wait_s):
            answer = (
                200,
                await runs.show(rt=rt, owner=owner, chat_id=chat_id, run_id=run_id, base=base),
            )
        else:
            answer = (
                202,
                {
                    "run_id": run_id,
                    "status": "running" if handle.started else "queued",
                    "status_url": links.run_url(base, handle.chat_id, run_id),
                },
            )
        attempt.remember(answer[0], to_jsonable_python(answer[1]))
        return answer
