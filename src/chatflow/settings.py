"""Typed settings: every field has a CHATFLOW_* environment variable (`chatflow serve` flags
set the common ones)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chatflow.operations.limits import XLSX_MAX_DATA_ROWS, Limits

# What reading one cell costs, measured as the address space a fresh process adds while it
# reads a 1,000,000 x 10 table of ints, floats, dates and short text (README, "Upload
# limits"; the one-off script in git show 2056715:benchmarks/upload_memory.py remeasures):
# - a workbook cell: 112 B in the inspection child (120 B when all cells are text), and about
#   the same in a step's worker reading it: calamine holds the whole sheet at once.
# - a csv cell: 48 B in a step's worker (fewer for smaller cells: 28 B when empty); the
#   inspection child walks a csv's records without keeping them, so what it needs follows the
#   file's size (about 5 bytes a byte), not its cells.
WORKBOOK_BYTES_PER_CELL = 128
CSV_BYTES_PER_CELL = 50
_MIB = 1024 * 1024


class Settings(BaseSettings):
    """All configuration, resolved once and passed to ``create_app``; nothing reads env later."""

    # populate_by_name: ``Settings(step_threads=2)`` as well as the variables a field's
    # validation_alias names.
    model_config = SettingsConfigDict(env_prefix="CHATFLOW_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(default=5050, ge=0, le=65535)
    ws_port: int = Field(
        default=5051,
        ge=0,
        le=65535,
        description="second port of the same server, for the seed's ws://HOST:5051/chat/{id} "
        "clients (it answers HTTP too); 0: off",
    )
    data_dir: Path = Path("./data")
    shared_files_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("CHATFLOW_FILES_DIR", "shared_files_dir"),
        description="where uploaded and produced files live (default DATA_DIR/files); every "
        "process of a cluster must see the same directory, with atomic renames",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL (sqlite+aiosqlite:// or postgresql+asyncpg://); "
        "default: SQLite file inside data_dir",
    )
    db_pool_size: int = Field(
        default=10,
        ge=1,
        description="PostgreSQL: connections this process keeps open (and at most uses); "
        "unused on SQLite",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis://HOST:PORT/DB: live events reach the WebSockets of every API "
        "process sharing the database (docs/scaling.md); default: this process only",
    )
    redis_prefix: str = Field(
        default="chatflow",
        min_length=1,
        description="Redis channel prefix ({prefix}:events), to keep installations that share "
        "one Redis apart",
    )
    role: Literal["all", "api", "worker"] = Field(
        default="all",
        description="what this process does: all (HTTP, WebSockets and runs), api (HTTP and "
        "WebSockets; runs go to workers) or worker (runs only; set by `chatflow worker`); api "
        "and worker need a PostgreSQL CHATFLOW_DATABASE_URL and a CHATFLOW_REDIS_URL",
    )
    worker_concurrency: int = Field(
        default=4,
        ge=1,
        le=256,
        description="runs one process executes at once from the PostgreSQL job queue "
        "(`chatflow worker --concurrency`, and `serve` on PostgreSQL)",
    )
    worker_heartbeat_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="how often a process executing runs on PostgreSQL says it is alive",
    )
    worker_stalled_s: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="a worker silent this long is taken for dead: its runs end interrupted",
    )
    max_upload_mb: int = Field(
        default=100, ge=1, description="size of one uploaded file; larger: 413 file_too_large"
    )
    step_threads: int = Field(
        default=4,
        ge=1,
        # CHATFLOW_WORKERS is this setting's old name; deployments that set it keep working.
        validation_alias=AliasChoices("CHATFLOW_STEP_THREADS", "CHATFLOW_WORKERS"),
        description="threads running spreadsheet steps (each waits on a worker process)",
    )
    worker_processes: int = Field(
        default_factory=lambda: min(4, os.cpu_count() or 1),
        ge=1,
        description="processes reading and writing spreadsheet files for the steps",
    )
    prestart_workers: bool = Field(
        default=True, description="start the worker processes at start-up, not on first use"
    )
    log_level: str = "info"
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="'json': one JSON object a line (time, level, logger, message, and "
        "request_id, chat_id, run_id where they apply)",
    )
    metrics_public: bool = Field(
        default=False,
        description="serve GET /metrics without an API key even when keys are configured "
        "(for a scraper on a trusted network)",
    )
    # Inspection runs every upload through a child process with these caps (see sandbox.py).
    inspect_processes: int = Field(
        default_factory=lambda: min(4, os.cpu_count() or 1),
        ge=1,
        description="upload inspections running at once, each in a process forked for it "
        "from one inspection fork server",
    )
    prestart_inspections: bool = Field(
        default=True,
        description="start the inspection fork server at start-up, not at the first upload",
    )
    inspect_memory_mb: int = Field(
        default=2048,
        ge=256,
        description="address-space cap of each upload inspection process; a file that needs "
        "more is refused with file_too_complex",
    )
    inspect_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="time (and CPU time) one upload inspection may take; a 1,000,000 x 10 xlsx "
        "takes about 25 s, longer ones are refused with inspection_timeout",
    )
    # Cell limits per format, sized by what reading a cell costs (WORKBOOK_BYTES_PER_CELL,
    # CSV_BYTES_PER_CELL below); a file is refused for its cells only past these.
    max_workbook_cells: int = Field(
        default=11_000_000,
        ge=1,
        # CHATFLOW_MAX_CELLS is this setting's old name (it limited csv files too).
        validation_alias=AliasChoices("CHATFLOW_MAX_WORKBOOK_CELLS", "CHATFLOW_MAX_CELLS"),
        description="cells an xlsx, xlsm, xlsb, xls or ods upload may hold (header included; "
        "xls and ods: all sheets together); more is refused with too_many_cells",
    )
    max_csv_cells: int = Field(
        default=40_000_000,
        ge=1,
        description="cells a csv upload may hold (data rows x columns); more is refused with "
        "too_many_cells",
    )
    # The cell limit, not this, should be what refuses a big ordinary workbook: 11,000,000
    # cells at ~45 B of sheet XML each (1M x 10 inflates to ~440 MB) with room for longer text.
    # Inflating and scanning it happens in the inspection child, under its CPU and time limits.
    max_uncompressed_mb: int = Field(
        default=1024,
        ge=1,
        description="bytes an xlsx, xlsb or ods upload may inflate to; more is refused with "
        "zip_bomb",
    )
    upload_idle_timeout_s: float = Field(
        default=30.0, gt=0, description="drop an upload whose body sends nothing for this long"
    )
    step_timeout_s: float = Field(default=300.0, gt=0, description="time limit of one step")
    # What one request or step may cost (see docs/security.md).
    step_memory_mb: int = Field(
        default=4096,
        ge=256,
        description="address-space cap (RLIMIT_AS) of each process that runs steps; a step "
        "that passes it fails its run with resource_limit",
    )
    max_rows: int = Field(
        default=4 * XLSX_MAX_DATA_ROWS,
        ge=1,
        description="rows a step may produce (cells, for steps that widen a table: pivot, "
        "split-column, append-files); joins, pivots, unpivots, splits, appends and SQL "
        "queries past it fail with too_many_rows",
    )
    max_text_chars: int = Field(
        default=10_000, ge=1, description="characters in any one string argument of a step"
    )
    max_query_chars: int = Field(
        default=20_000, ge=1, description="characters in an excel/sql query"
    )
    max_json_kb: int = Field(
        default=1024,
        ge=1,
        description="size of a request body other than an upload; larger ones get 413 "
        "body_too_large",
    )
    max_steps: int = Field(default=100, ge=1, description="steps in one workflow")
    subscriber_queue_size: int = Field(default=1000, ge=1)
    ws_ping_interval_s: float = Field(default=20.0, gt=0)
    shutdown_grace_s: float = Field(default=10.0, ge=0)
    idempotency_wait_s: float = Field(
        default=30.0,
        gt=0,
        description="how long a request waits for another one with the same Idempotency-Key "
        "to answer before 409 idempotency_in_progress; execute ?wait=true waits its own timeout",
    )
    api_keys: str | None = Field(
        default=None,
        description="comma-separated API keys; when set every endpoint but health and the "
        "docs needs 'Authorization: Bearer KEY'",
    )
    api_keys_file: Path | None = Field(default=None, description="file with one API key a line")
    allowed_origins: str | None = Field(
        default=None,
        description="comma-separated Origins allowed to open WebSockets ('*' for any); "
        "default: same host only (and clients that send no Origin)",
    )
    cors_origins: str | None = Field(
        default=None, description="comma-separated Origins for CORS; off by default"
    )
    public_url: str | None = Field(
        default=None, description="base URL for links; default: taken from each request"
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="comma-separated addresses (or '*') whose X-Forwarded-Proto and "
        "X-Forwarded-For are believed: a load balancer in front (deploy/); links are built "
        "from its Host and scheme",
    )
    xlsx_writer: Literal["xlsxwriter", "rustpy-xlsxwriter"] = Field(
        default="rustpy-xlsxwriter",
        description="engine writing xlsx outputs (the same cells either way); 'xlsxwriter' is "
        "the fallback, used by itself, with a warning at start-up, when rustpy-xlsxwriter "
        "cannot be imported",
    )

    @field_validator("log_level")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def files_dir(self) -> Path:
        if self.shared_files_dir is not None:
            return self.shared_files_dir.expanduser().resolve()
        return self.resolved_data_dir / "files"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.resolved_data_dir / 'chatflow.db'}"

    @property
    def uses_job_queue(self) -> bool:
        """Runs go through procrastinate's queue in the database, shared by every process."""
        return self.resolved_database_url.startswith("postgresql")

    def role_problem(self) -> str | None:
        """Why this role cannot run with this configuration, or None."""
        if self.role == "all":
            return None
        if not self.uses_job_queue:
            return (
                f"role {self.role!r} needs a PostgreSQL CHATFLOW_DATABASE_URL (runs are "
                "handed between processes through its job queue)"
            )
        if not self.redis_url:
            return (
                f"role {self.role!r} needs CHATFLOW_REDIS_URL (a run's events reach the "
                "API processes through it)"
            )
        return None

    def resolved_api_keys(self) -> list[str]:
        """Keys from API_KEYS and API_KEYS_FILE (blank lines and '#' comments ignored)."""
        keys = [k.strip() for k in (self.api_keys or "").split(",")]
        if self.api_keys_file is not None:
            lines = self.api_keys_file.read_text(encoding="utf-8").splitlines()
            keys += [line.strip() for line in lines if not line.strip().startswith("#")]
        return [k for k in keys if k]

    @staticmethod
    def _csv(value: str | None) -> list[str]:
        return [item.strip().rstrip("/") for item in (value or "").split(",") if item.strip()]

    @property
    def allowed_origin_list(self) -> list[str]:
        return self._csv(self.allowed_origins)

    @property
    def cors_origin_list(self) -> list[str]:
        return self._csv(self.cors_origins)

    @property
    def limits(self) -> Limits:
        """The step and argument bounds these settings set."""
        return Limits(
            max_rows=self.max_rows,
            max_text_chars=self.max_text_chars,
            max_query_chars=self.max_query_chars,
        )

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    def limit_conflicts(self) -> list[str]:
        """Cell limits that admit files their memory caps cannot read (logged at start-up):
        such files would fail later, with file_too_complex or resource_limit, instead."""
        conflicts = []
        workbook_mb = self.max_workbook_cells * WORKBOOK_BYTES_PER_CELL // _MIB
        for cap, cap_mb in (
            ("INSPECT_MEMORY_MB", self.inspect_memory_mb),
            ("STEP_MEMORY_MB", self.step_memory_mb),
        ):
            if workbook_mb > cap_mb:
                conflicts.append(
                    f"CHATFLOW_MAX_WORKBOOK_CELLS={self.max_workbook_cells} needs about "
                    f"{workbook_mb} MB to read a workbook ({WORKBOOK_BYTES_PER_CELL} B a cell), "
                    f"more than CHATFLOW_{cap}={cap_mb}"
                )
        csv_mb = self.max_csv_cells * CSV_BYTES_PER_CELL // _MIB
        if csv_mb > self.step_memory_mb:
            conflicts.append(
                f"CHATFLOW_MAX_CSV_CELLS={self.max_csv_cells} needs about {csv_mb} MB to read "
                f"a csv ({CSV_BYTES_PER_CELL} B a cell), more than "
                f"CHATFLOW_STEP_MEMORY_MB={self.step_memory_mb}"
            )
        return conflicts
