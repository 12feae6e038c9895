"""Where a step's blocking work runs: a step thread waiting on a worker process, within the step
time limit, every way it can fail turned into a ``RunError``.  Real runs and dry runs both come
through here, so they share the same threads, processes and limits."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from chatflow.db.models import StoredFile
from chatflow.failures import Cancelled
from chatflow.runs.outcomes import RunError, error_for, timed_out
from chatflow.runs.queue import RunHandle
from chatflow.runs.step_io import RunFiles, StoredRef, cancel_checker
from chatflow.runs.worker_pool import WorkerPool
from chatflow.settings import Settings
from chatflow.storage import FileStore

T = TypeVar("T")


@dataclass
class StepRunner:
    """The step threads, the worker processes and the settings that bound a step."""

    threads: ThreadPoolExecutor
    processes: WorkerPool
    store: FileStore
    settings: Settings

    def files_for(
        self,
        chat_id: str,
        input_row: StoredFile,
        latest: list[StoredFile],
        *,
        run_id: str | None = None,
        sample_rows: int | None = None,
    ) -> RunFiles:
        """The StepIO of run ``run_id`` (or, with ``sample_rows``, of a dry run) over the chat's
        files."""
        store = self.store
        return RunFiles(
            store=store,
            chat_id=chat_id,
            input_name=input_row.name,
            input_path=store.path(chat_id, input_row.storage_name),
            input_kind=input_row.kind,
            input_delimiter=input_row.delimiter,
            chat_files={
                row.name: StoredRef(store.path(chat_id, row.storage_name), row.kind, row.delimiter)
                for row in latest
            },
            taken_names={row.name for row in latest},
            dry_run=sample_rows is not None,
            sample_rows=sample_rows,
            processes=self.processes,
            xlsx_engine=self.settings.xlsx_writer,
            limits=self.settings.limits,
            output_prefix=f"{uuid.UUID(run_id).hex if run_id else uuid.uuid4().hex}_",
        )

    async def run(
        self, handle: RunHandle, label: str, work: Callable[[Callable[[], None]], T]
    ) -> T:
        """``work(check_cancelled)`` in a step thread; RunError for every failure but a cancel.

        At the time limit the run is cancelled and this waits until the worker has stopped or
        been killed (at most the workers' stop grace), so a timed-out step holds no slot after.
        """
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self.threads, functools.partial(work, cancel_checker(handle.cancel))
        )
        limit = self.settings.step_timeout_s
        try:
            return await asyncio.wait_for(asyncio.shield(future), limit)
        except TimeoutError:
            handle.request_cancel("timeout")
            with contextlib.suppress(BaseException):
                await future
            raise timed_out(label, limit) from None
        except (Cancelled, RunError):
            raise
        except Exception as exc:
            raise error_for(exc, label, handle.run_id) from None

    async def discard(self, files: RunFiles | None) -> None:
        """Remove what a failed or cancelled run wrote."""
        if files is not None and files.written:
            await asyncio.get_running_loop().run_in_executor(self.threads, files.discard_written)

    async def release(self, files: RunFiles | None) -> None:
        """Remove the run's temp files once it has ended, however it ended."""
        if files is not None:
            await asyncio.get_running_loop().run_in_executor(self.threads, files.release)
