"""A bench-only chatflow server that publishes events itself: `python -m benchmarks.publish_server`.

It is the real server (``chatflow.cli.build_server``: ``create_app(settings)``, the same uvicorn
configuration, the same shutdown) plus one route, ``POST /bench/publish``, that makes the
server's own event loop publish N events to a chat through the real path
(``chatflow.services.events.emit`` -> ``Broadcaster`` -> the SQLite event store -> every
subscriber's queue -> its WebSocket), as fast as it can or paced.  Nothing else publishes while
it runs, so what the subscribers measure is the fan-out, not HTTP request handling.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field

from benchmarks.fanout import MARKER
from benchmarks.server import Server, child_server
from chatflow.services import events

EVENT_TYPE = "bench_event"


class PublishRequest(BaseModel):
    chat_id: str
    count: int = Field(gt=0)
    # None: as fast as the server can; otherwise events per second.
    rate: float | None = Field(default=None, gt=0)
    # Concurrent publishers when not paced (each waits for its event to be stored).
    publishers: int = Field(default=16, gt=0)


router = APIRouter()


@router.post("/bench/publish")
async def publish(body: PublishRequest, request: Request) -> dict[str, Any]:
    """Publish ``count`` events to the chat on this loop; answers once all are stored."""
    rt = request.state.runtime
    loop = asyncio.get_running_loop()

    async def one(i: int) -> None:
        await events.emit(
            rt.broadcaster, chat_id=body.chat_id, type=EVENT_TYPE, message=f"{MARKER}{i}", n=i
        )

    started = time.time()
    await _publish_all(body, one, loop)
    return {"started": started, "finished": time.time(), "count": body.count}


@router.post("/bench/gc")
async def gc_pauses() -> dict[str, Any]:
    """The garbage collector's pauses since the last call (then forgets them)."""
    summary = GC_PAUSES.summary()
    GC_PAUSES.pauses.clear()
    return summary


class _GcPauses:
    """Durations of the cyclic garbage collector's runs (they stop the event loop)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._start))

    def summary(self) -> dict[str, Any]:
        return {
            "collections": len(self.pauses),
            "full_collections": sum(1 for generation, _ in self.pauses if generation == 2),
            "total_ms": 1000 * sum(d for _, d in self.pauses),
            "max_ms": 1000 * max((d for _, d in self.pauses), default=0.0),
        }


GC_PAUSES = _GcPauses()


async def _publish_all(
    body: PublishRequest,
    one: Callable[[int], Coroutine[Any, Any, None]],
    loop: asyncio.AbstractEventLoop,
) -> None:
    if body.rate is None:
        counter = iter(range(body.count))

        async def worker() -> None:
            for i in counter:
                await one(i)

        await asyncio.gather(*(worker() for _ in range(body.publishers)))
    else:
        tasks = []
        origin = loop.time()
        for i in range(body.count):
            delay = origin + i / body.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)


def main(argv: list[str] | None = None) -> int:
    from chatflow.cli import build_server
    from chatflow.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m benchmarks.publish_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument(
        "--ws", help="uvicorn WebSocket implementation instead of the server's own (exploration)"
    )
    args = parser.parse_args(argv)
    settings = Settings(
        host="127.0.0.1", port=args.port, data_dir=args.data_dir, log_level="warning"
    )
    server = build_server(settings, freeze_gc=True)  # as `chatflow serve` does
    app = server.config.app
    assert isinstance(app, FastAPI)  # what create_app built; uvicorn loads it at run()
    app.include_router(router)
    gc.callbacks.append(GC_PAUSES)
    if args.ws:
        server.config.ws = args.ws
    server.run()
    return 0


@contextlib.contextmanager
def run_publish_server(data_dir: Path, log_path: Path) -> Iterator[Server]:
    """Start the publishing server in a child process, wait for its health check, stop it."""
    with child_server(["benchmarks.publish_server"], data_dir, log_path) as server:
        yield server


if __name__ == "__main__":
    sys.exit(main())
