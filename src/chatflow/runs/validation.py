"""Validating an execute request whole, before anything is recorded: steps, arguments, the
input file, and the columns the first step needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from chatflow.db.models import StoredFile
from chatflow.errors import Invalid
from chatflow.failures import StepFailed
from chatflow.operations.common import require_columns
from chatflow.operations.registry import Operation
from chatflow.repositories import files as files_repo
from chatflow.runtime import Runtime
from chatflow.services import chats


@dataclass
class StepRequest:
    operation: str
    arguments: dict[str, Any]


def validate_steps(rt: Runtime, steps: list[StepRequest]) -> list[tuple[Operation[Any], Any]]:
    """Each step's operation and validated arguments; 422 for the first problem."""
    if not steps:
        raise Invalid("a workflow needs at least one step", code="empty_workflow")
    # Checked before any step is looked at: execute, dry runs and saved workflows all pass here.
    limit = rt.settings.max_steps
    if len(steps) > limit:
        raise Invalid(
            f"a workflow may have at most {limit} steps (CHATFLOW_MAX_STEPS); this one has "
            f"{len(steps)}",
            code="too_many_steps",
            details={"limit": limit, "steps": len(steps)},
        )
    validated = []
    for index, step in enumerate(steps):
        operation = rt.registry.get(step.operation)
        if operation is None:
            raise Invalid(
                f"steps[{index}]: unknown operation {step.operation!r}",
                code="unknown_operation",
                details={
                    "step_index": index,
                    "operation": step.operation,
                    "available": rt.registry.names(),
                },
            )
        try:
            args = operation.args_model.model_validate(
                step.arguments, context=rt.settings.limits.as_context()
            )
        except ValidationError as exc:
            problems = [
                {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
                for err in exc.errors(include_url=False, include_context=False)
            ]
            first = problems[0]
            where = ".".join(str(part) for part in first["loc"]) or "arguments"
            raise Invalid(
                f"steps[{index}] ({step.operation}): {where}: {first['msg']}",
                code="invalid_arguments",
                details={"step_index": index, "operation": step.operation, "errors": problems},
            ) from None
        validated.append((operation, args))
    return validated


def _check_input_columns(
    validated: list[tuple[Operation[Any], Any]], input_file: StoredFile
) -> None:
    """Refuse now what the first step would fail on: columns its input does not have."""
    operation, args = validated[0]
    if operation.input_columns is None or not input_file.columns:
        return
    if getattr(args, "sheet", None) not in (None, (input_file.sheets or [None])[0]):
        return  # another sheet: its columns are only known when the step reads it
    try:
        require_columns([str(c) for c in input_file.columns], operation.input_columns(args))
    except StepFailed as exc:
        raise Invalid(
            f"steps[0] ({operation.name}): {exc.message} (in {input_file.name!r})",
            code=exc.code,
            details={"step_index": 0, **exc.details},
        ) from None


@dataclass
class Prepared:
    """A request validated against the chat: its steps and the input file version."""

    chat_id: str
    validated: list[tuple[Operation[Any], Any]]
    input_file: StoredFile


async def prepare_run(
    *,
    rt: Runtime,
    chat_id: str,
    owner: str | None,
    steps: list[StepRequest],
    input_name: str | None,
) -> Prepared:
    """Validate the whole request: steps, arguments, input file, first step's columns."""
    chat = await chats.require(rt=rt, chat_id=chat_id, owner=owner)
    validated = validate_steps(rt, steps)
    async with rt.db.read() as session:
        if input_name is not None:
            input_file = await files_repo.get(session, chat_id=chat.id, name=input_name)
        else:
            input_file = await files_repo.latest_upload(session, chat_id=chat.id)
    if input_file is None:
        if input_name is not None:
            raise Invalid(
                f"input file {input_name!r} not found in this chat",
                code="input_not_found",
                details={"input": input_name},
            )
        raise Invalid(
            "this chat has no uploaded file to run on; upload one or name an 'input'",
            code="input_not_found",
        )
    _check_input_columns(validated, input_file)
    return Prepared(chat.id, validated, input_file)
