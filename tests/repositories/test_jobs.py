"""The run queue's rows in procrastinate's tables (PostgreSQL): a chat's jobs come out one at a
time in order, and a job that ends wakes the workers for the chat's next one."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from chatflow.runs.job_queue import QUEUE, TASK, conninfo
from tests.postgres import PostgresDatabases

DEFER = (
    "SELECT (procrastinate_defer_jobs_v1(ARRAY[ROW($1, $2, 0, $3, NULL, '{}'::jsonb, NULL)"
    "::procrastinate_job_to_defer_v1]))[1]"
)
FETCH = "SELECT id FROM procrastinate_fetch_job_v2($1, $2)"


def test_a_chats_jobs_come_out_in_order_and_an_ending_wakes_the_workers(
    postgres: PostgresDatabases,
) -> None:
    url = postgres.migrated()

    async def scenario() -> None:
        conn = await asyncpg.connect(conninfo(url))
        listener = await asyncpg.connect(conninfo(url))
        heard: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        try:
            await listener.add_listener(
                f"procrastinate_queue_v1#{QUEUE}",
                lambda *args: heard.put_nowait(json.loads(args[3])),
            )
            worker = await conn.fetchval("SELECT worker_id FROM procrastinate_register_worker_v1()")
            first, second = [await conn.fetchval(DEFER, QUEUE, TASK, "chat:a") for _ in range(2)]
            other = await conn.fetchval(DEFER, QUEUE, TASK, "chat:b")
            for _ in range(3):  # each insert is announced by procrastinate itself
                assert (await asyncio.wait_for(heard.get(), 5))["type"] == "job_inserted"
            # One job per chat at a time, the oldest first; other chats are not held up.
            assert await conn.fetchval(FETCH, [QUEUE], worker) == first
            assert await conn.fetchval(FETCH, [QUEUE], worker) == other
            assert await conn.fetchval(FETCH, [QUEUE], worker) is None  # 'second' waits
            await conn.execute("SELECT procrastinate_finish_job_v1($1, 'succeeded', false)", first)
            # The ending frees chat a: the workers hear of it at once, not at their next poll.
            woken = await asyncio.wait_for(heard.get(), 5)
            assert woken == {"type": "job_inserted", "job_id": first}
            assert await conn.fetchval(FETCH, [QUEUE], worker) == second
            assert heard.empty()  # starting a job announces nothing
        finally:
            await conn.close()
            await listener.close()

    asyncio.run(scenario())
