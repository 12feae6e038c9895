"""Request and response models: they validate input and document the API in OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chatflow.services.workflows import NAME as WORKFLOW_NAME

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    data: T


class ErrorBody(BaseModel):
    code: str = Field(examples=["chat_not_found"])
    message: str = Field(examples=["chat 0b7c... not found"])
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ChatCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"title": "Q3"}]})
    title: str | None = Field(default=None, max_length=200)


class ChatRename(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"title": "Q4"}]})
    title: str | None = Field(max_length=200, description="the new title; null clears it")


class ChatOut(BaseModel):
    chat_id: str
    title: str | None
    created_at: datetime
    last_seq: int = Field(description="sequence number of the chat's latest event")
    websocket_url: str


class FileOut(BaseModel):
    filename: str
    version: int
    size: int
    sha256: str
    media_type: str
    kind: str
    sheets: list[str] | None
    columns: list[str] | None
    row_count: int | None
    delimiter: str | None = Field(
        default=None, description="csv delimiter given at upload (None: detected when read)"
    )
    source: Literal["upload", "output"]
    run_id: str | None = Field(description="the run that produced this file, for outputs")
    created_at: datetime
    download_url: str


class StepIn(BaseModel):
    """A step as a request gives it; the document replaces this schema with one variant per
    registered operation (api/openapi.py), the run validates the arguments (runs/validation.py)."""

    model_config = ConfigDict(extra="forbid")
    operation: str = Field(examples=["excel/extract-columns-to-file"])
    arguments: dict[str, Any] = Field(default_factory=dict)


class SavedStep(BaseModel):
    """A saved workflow's step as it was saved (its arguments validated then)."""

    operation: str = Field(examples=["excel/extract-columns-to-file"])
    arguments: dict[str, Any]


def _one_of(first: str, second: str) -> dict[str, Any]:
    """JSON Schema for a body that gives exactly one of two fields (null counts as absent).

    Written as "not both, not neither" rather than a ``oneOf`` of two shapes, so that client
    generators still see one object with typed properties."""
    given = [
        {"required": [name], "properties": {name: {"not": {"type": "null"}}}}
        for name in (first, second)
    ]
    neither = [{"not": one} for one in given]
    return {"not": {"anyOf": [{"allOf": given}, {"allOf": neither}]}}


class ExecuteIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            **_one_of("steps", "workflow"),
            "examples": [
                {
                    "steps": [
                        {
                            "operation": "excel/extract-columns-to-file",
                            "arguments": {"columns": ["postal_code"], "remove_duplicates": True},
                        }
                    ]
                }
            ],
        },
    )
    steps: list[StepIn] | None = Field(default=None, description="the steps to run, in order")
    workflow: str | None = Field(
        default=None, description="run a saved workflow by name instead of giving steps"
    )
    input: str | None = Field(
        default=None, description="file the first step reads; default: the latest upload"
    )

    @model_validator(mode="after")
    def _steps_or_workflow(self) -> ExecuteIn:
        if (self.steps is None) == (self.workflow is None):
            raise ValueError("give either 'steps' or 'workflow'")
        return self


RunStatus = Literal["queued", "running", "completed", "failed", "cancelled", "interrupted"]


class StepOut(BaseModel):
    index: int
    operation: str
    arguments: dict[str, Any]
    status: Literal["pending", "running", "completed", "failed", "skipped"]
    message: str | None
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None


class RunInput(BaseModel):
    filename: str
    version: int


class RunOut(BaseModel):
    run_id: str
    chat_id: str
    status: RunStatus
    input: RunInput
    steps: list[StepOut]
    outputs: list[FileOut]
    error: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    status_url: str


class RunAccepted(BaseModel):
    run_id: str
    status: RunStatus
    status_url: str


class ChatDetail(ChatOut):
    files: list[FileOut]
    runs: list[RunOut]


class ChatPage(BaseModel):
    items: list[ChatOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


class Deleted(BaseModel):
    deleted: int


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=20_000, examples=["keep only the postal codes"])


class MessageOut(BaseModel):
    id: int
    role: Literal["user", "system"]
    text: str
    data: dict[str, Any] | None
    created_at: datetime


class EventOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    seq: int
    chat_id: str
    run_id: str | None = None
    timestamp: str
    message: str


class OperationOut(BaseModel):
    name: str
    description: str
    arguments_schema: dict[str, Any]
    example: dict[str, Any]


class LivenessOut(BaseModel):
    """What /health tells a caller without a valid key when API keys are configured."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["ok", "degraded"]


class ProbeOut(BaseModel):
    """What /health/live and /health/ready answer when they answer 200."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["ok"]


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    database: Literal["ok", "unreachable"]
    websocket: Literal["running"]
    websocket_url: str = Field(examples=["ws://127.0.0.1:5050/chat/{chat_id}"])
    websocket_seed_url: str | None = Field(
        description="the same socket on the second port (CHATFLOW_WS_PORT) that the seed's "
        "clients use; null when that port is off (0)",
        examples=["ws://127.0.0.1:5051/chat/{chat_id}"],
    )
    active_runs: int
    subscribers: int
    uptime_s: float


class DryRunStep(BaseModel):
    index: int
    operation: str
    columns: list[str] | None = Field(description="columns of the table this step hands on")
    types: list[str] | None = Field(
        description="each column's type (integer, float, boolean, date, datetime, time, text, "
        "empty), in the order of columns"
    )
    row_count: int | None = Field(description="rows it produced from the sample")
    rows: list[list[Any]] = Field(
        description="the first rows it produced, typed: numbers and booleans as JSON numbers "
        "and booleans, dates as ISO text"
    )
    result: dict[str, Any] | None
    files: list[str] = Field(description="files it would write")


class DryRunOut(BaseModel):
    input: RunInput
    sample_rows: int = Field(description="how many input rows the steps ran on")
    steps: list[DryRunStep]


class WorkflowSave(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            **_one_of("steps", "run_id"),
            "examples": [{"name": "postal codes", "run_id": "<run id>"}],
        },
    )
    # The pattern is checked by the service (422 invalid_workflow_name), not by this model.
    name: str = Field(max_length=100, json_schema_extra={"pattern": WORKFLOW_NAME.pattern})
    description: str | None = Field(default=None, max_length=2000)
    steps: list[StepIn] | None = Field(default=None, description="steps to save (or give run_id)")
    run_id: str | None = Field(
        default=None, description="a run of this chat to save (or give steps)"
    )
    replace: bool = Field(default=False, description="overwrite a workflow of the same name")


class WorkflowOut(BaseModel):
    name: str
    description: str | None
    steps: list[SavedStep]
    source_chat_id: str | None
    source_run_id: str | None
    created_at: datetime
    updated_at: datetime
