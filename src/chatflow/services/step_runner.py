"""Run a step's blocking work from async code: in a worker process, within the step time limit,
every way it can end turned into a failure with a stable code.  Real runs and dry runs both
come through here, so they share the same processes and limits."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from chatflow.execution.pipeline import cancel_checker
from chatflow.execution.queue import RunHandle
from chatflow.execution.workers import ResourceLimit, WorkerCrashed
from chatflow.operations.registry import Cancelled, StepFailed
from chatflow.runtime import Runtime
from chatflow.storage import DISK_FULL

log = logging.getLogger(__name__)
T = TypeVar("T")


class StepError(Exception):
    """A step that did not produce its output; ``error`` is the run's error object."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.error: dict[str, Any] = {"code": code, "message": message}
        if details is not None:
            self.error["details"] = details


async def run_blocking(
    rt: Runtime,
    handle: RunHandle,
    label: str,
    work: Callable[[Callable[[], None]], T],
) -> T:
    """``work(check_cancelled)`` in the step executor; StepError for every failure but a cancel.

    At the time limit the run is cancelled and this waits until the worker has stopped or been
    killed (at most the workers' stop grace), so a timed-out step holds no slot afterwards.
    """
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(
        rt.executor, functools.partial(work, cancel_checker(handle.cancel))
    )
    limit = rt.settings.step_timeout_s
    try:
        return await asyncio.wait_for(asyncio.shield(future), limit)
    except TimeoutError:
        handle.request_cancel("timeout")
        with contextlib.suppress(BaseException):
            await future
        raise StepError(
            "timeout",
            f"{label} took longer than the {limit:g} s step time limit (CHATFLOW_STEP_TIMEOUT_S)",
        ) from None
    except (Cancelled, StepError):
        raise
    except StepFailed as exc:
        raise StepError(exc.code, exc.message, exc.details) from None
    except ResourceLimit as exc:
        raise StepError(
            "resource_limit",
            f"{label} needed more than the {exc.memory_mb} MB memory limit of a step "
            "(CHATFLOW_STEP_MEMORY_MB); nothing else was affected",
            {"memory_mb": exc.memory_mb, "setting": "CHATFLOW_STEP_MEMORY_MB"},
        ) from None
    except WorkerCrashed as exc:
        log.error("the worker running %s for run %s died: %s", label, handle.run_id, exc)
        raise StepError("worker_crashed", f"{label} stopped: {exc}") from None
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise StepError(
                "disk_full", "the server's disk is full; the step's output was not kept"
            ) from None
        log.warning("step %s of run %s: %s", label, handle.run_id, exc)
        raise StepError(
            "io_error",
            f"{label} could not read or write a file on the server: {exc.strerror or exc}",
        ) from None
    except Exception as exc:
        log.exception("%s of run %s raised", label, handle.run_id)
        raise StepError(
            "step_error",
            f"{label} could not process the input: {type(exc).__name__}: {exc}"[:500],
        ) from None
