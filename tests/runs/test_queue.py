"""The run queue on its own: one chat's runs in order, chats in parallel, and shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from chatflow.failures import Cancelled
from chatflow.runs.queue import RunHandle, RunQueue

LIMIT_S = 10  # only a guard against a hang; nothing waits for it to pass


class Gated:
    """An execute callback whose runs start, record themselves and wait to be released."""

    def __init__(self) -> None:
        self.started: dict[str, asyncio.Event] = {}
        self.release: dict[str, asyncio.Event] = {}
        self.order: list[str] = []
        self.running: dict[str, int] = {}
        self.most_at_once: dict[str, int] = {}

    def gate(self, run_id: str) -> None:
        self.started[run_id] = asyncio.Event()
        self.release[run_id] = asyncio.Event()

    async def __call__(self, handle: RunHandle) -> None:
        chat = handle.chat_id
        self.order.append(handle.run_id)
        self.running[chat] = self.running.get(chat, 0) + 1
        self.most_at_once[chat] = max(self.most_at_once.get(chat, 0), self.running[chat])
        self.started[handle.run_id].set()
        try:
            await self.release[handle.run_id].wait()
        finally:
            self.running[chat] -= 1


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    async def guarded() -> Any:
        return await asyncio.wait_for(scenario(), LIMIT_S)

    return asyncio.run(guarded())


def test_one_chats_runs_start_in_submission_order_one_at_a_time() -> None:
    async def scenario() -> None:
        execute = Gated()
        queue = RunQueue(execute)
        for run_id in ("r1", "r2", "r3"):
            execute.gate(run_id)
        handles = [queue.submit("chat", run_id) for run_id in ("r1", "r2", "r3")]
        await execute.started["r1"].wait()
        assert [execute.started[h.run_id].is_set() for h in handles] == [True, False, False]
        assert queue.active == 3
        for earlier, later in (("r1", "r2"), ("r2", "r3")):
            execute.release[earlier].set()
            await execute.started[later].wait()
            assert handles[int(earlier[1]) - 1].done.is_set()
        execute.release["r3"].set()
        await handles[2].done.wait()
        assert execute.order == ["r1", "r2", "r3"]
        assert execute.most_at_once == {"chat": 1}
        assert queue.active == 0

    run(scenario)


def test_different_chats_run_at_the_same_time() -> None:
    async def scenario() -> None:
        seen: dict[str, asyncio.Event] = {"a": asyncio.Event(), "b": asyncio.Event()}

        async def execute(handle: RunHandle) -> None:
            # Each run ends only once the other chat's run has started: in series, neither could.
            seen[handle.chat_id].set()
            await seen["b" if handle.chat_id == "a" else "a"].wait()

        queue = RunQueue(execute)
        first, second = queue.submit("a", "ra"), queue.submit("b", "rb")
        await asyncio.gather(first.done.wait(), second.done.wait())

    run(scenario)


def test_a_run_that_raises_does_not_stop_the_chats_next_run() -> None:
    async def scenario() -> None:
        ran: list[str] = []

        async def execute(handle: RunHandle) -> None:
            ran.append(handle.run_id)
            if handle.run_id == "bad":
                raise RuntimeError("a bug")

        queue = RunQueue(execute)
        queue.submit("chat", "bad")
        good = queue.submit("chat", "good")
        await good.done.wait()
        assert ran == ["bad", "good"]

    run(scenario)


def test_shutdown_lets_the_running_run_finish_and_returns_the_never_started() -> None:
    async def scenario() -> None:
        execute = Gated()
        queue = RunQueue(execute)
        for run_id in ("r1", "r2", "r3"):
            execute.gate(run_id)
        running, *waiting = [queue.submit("chat", run_id) for run_id in ("r1", "r2", "r3")]
        await execute.started["r1"].wait()
        stopping = asyncio.create_task(queue.shutdown(grace_s=LIMIT_S))
        # Callbacks run in the order they were scheduled: shutdown takes the waiting runs
        # (its first step) before r1 is released.
        asyncio.get_running_loop().call_soon(execute.release["r1"].set)
        never_started = await stopping
        assert not queue.accepting
        assert never_started == [handle.run_id for handle in waiting]
        assert all(h.done.is_set() and not execute.started[h.run_id].is_set() for h in waiting)
        assert running.done.is_set() and not running.cancel.is_set()
        assert execute.order == ["r1"]
        with pytest.raises(RuntimeError, match="shut down"):
            queue.submit("chat", "r4")

    run(scenario)


def test_shutdown_past_the_grace_period_asks_running_runs_to_stop() -> None:
    async def scenario() -> None:
        reasons: list[str | None] = []
        started = asyncio.Event()

        async def execute(handle: RunHandle) -> None:
            started.set()
            await asyncio.to_thread(handle.cancel.wait)  # as a step thread notices the flag
            reasons.append(handle.cancel_reason)

        queue = RunQueue(execute)
        queue.submit("chat", "r1")
        await started.wait()  # it is running, so shutdown has nothing never started to return
        assert await queue.shutdown(grace_s=0) == []
        assert reasons == ["shutdown"]

    run(scenario)


def test_cancel_chat_flags_that_chats_runs_only() -> None:
    async def scenario() -> None:
        execute = Gated()
        queue = RunQueue(execute)
        for run_id in ("a1", "a2", "b1"):
            execute.gate(run_id)
        a1, a2, b1 = (
            queue.submit(chat, run_id) for chat, run_id in (("a", "a1"), ("a", "a2"), ("b", "b1"))
        )
        await queue.cancel_chat("a", "chat_deleted")
        assert (a1.cancel_reason, a2.cancel_reason, b1.cancel_reason) == (
            "chat_deleted",
            "chat_deleted",
            None,
        )
        for gate in execute.release.values():
            gate.set()
        await asyncio.gather(a1.done.wait(), a2.done.wait(), b1.done.wait())

    run(scenario)


def test_work_in_turn_waits_for_the_chats_earlier_runs_and_returns_its_result() -> None:
    async def scenario() -> None:
        execute = Gated()
        execute.gate("r1")
        queue = RunQueue(execute)
        earlier = queue.submit("chat", "r1")
        await execute.started["r1"].wait()

        async def work(handle: RunHandle) -> str:
            assert earlier.done.is_set()
            return "checked"

        turn = asyncio.create_task(queue.run_in_turn("chat", work))
        execute.release["r1"].set()
        assert await turn == "checked"
        assert queue.active == 0  # work in turn is not a run

    run(scenario)


def test_work_in_turn_stopped_by_its_chat_being_deleted_raises_cancelled() -> None:
    async def scenario() -> None:
        execute = Gated()
        execute.gate("r1")
        queue = RunQueue(execute)
        queue.submit("chat", "r1")
        await execute.started["r1"].wait()

        async def work(handle: RunHandle) -> str:
            raise AssertionError("a cancelled turn never starts")

        turn = asyncio.create_task(queue.run_in_turn("chat", work))
        # Scheduled after the turn's first step, which queues it behind r1.
        loop = asyncio.get_running_loop()
        loop.call_soon(lambda: asyncio.ensure_future(queue.cancel_chat("chat", "chat_deleted")))
        loop.call_soon(execute.release["r1"].set)
        with pytest.raises(Cancelled):
            await turn

    run(scenario)
