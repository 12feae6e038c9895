"""Phases on events: fan-out over WebSockets from the publish server, the broadcaster alone."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import httpx

from benchmarks import fanout
from benchmarks.broadcaster_alone import broadcaster_alone
from benchmarks.config import (
    BC_EVENTS,
    BC_PACED_EVENTS,
    PACED_RATE,
    PACED_WS_EVENTS,
    RESULTS_JSON,
    RUN,
    S3,
    WS_EVENTS,
    WS_PUBLISHERS,
    WS_SUBSCRIBERS,
)
from benchmarks.publish_server import run_publish_server
from benchmarks.report import Results
from benchmarks.server import (
    Server,
    create_chat,
    delete_chat,
)

log = logging.getLogger("benchmarks")


# --- 3 ----------------------------------------------------------------------------------------


def run_fanout(res: Results, work: Path) -> None:
    """Over the wire, from a publish server (the real app publishing on its own loop)."""
    details: list[dict[str, Any]] = []
    server_log = work / "publish-server.log"

    def measure(
        client: httpx.Client,
        server: Server,
        subscribers: int,
        events: int,
        rate: float | None,
        batch: bool,
    ) -> dict[str, Any]:
        chat = create_chat(client, f"bench: fan-out {subscribers}")
        try:
            result = fanout.over_websockets(
                base_url=server.url,
                ws_url=server.ws_url,
                server_pid=server.pid,
                chat_id=chat,
                subscribers=subscribers,
                events=events,
                publishers=WS_PUBLISHERS,
                rate=rate,
                batch=batch,
                log_path=work / "fanout-client.log",
            )
        finally:
            delete_chat(client, chat)
        details.append(result)
        mode = "batched" if batch else "per-event"
        if not result["complete"]:
            res.notes.append(
                f"fan-out ({mode}) to {subscribers} subscribers incomplete: lost {result['lost']}, "
                f"order errors {result['order_errors']}, timed out {result['timed_out']}, "
                f"errors {result['errors']}"
            )
        if result["reconnects"]:
            res.notes.append(
                f"fan-out ({mode}) to {subscribers} subscribers: {result['reconnects']} reconnects "
                "after 1013 (subscriber fell 1000 events behind), caught up with ?since="
            )
        return result

    def add_fast(key: str, label: str, r: dict[str, Any]) -> None:
        res.add(
            f"{key}_delivered", f"{label}: delivered events/s", "ev/s", r["delivered_per_s"], S3
        )
        res.add(f"{key}_publish", f"    {label}: events published/s", "ev/s", r["publish_rate"], S3)
        res.add(f"{key}_p50", f"    {label}: latency p50", "ms", r["latency"]["p50_ms"], S3)
        res.add(f"{key}_p99", f"    {label}: latency p99", "ms", r["latency"]["p99_ms"], S3)

    def add_paced(key: str, label: str, r: dict[str, Any]) -> None:
        res.add(f"{key}_rate", f"{label}: achieved publish rate", "ev/s", r["publish_rate"], S3)
        res.add(f"{key}_p50", f"    {label}: latency p50", "ms", r["latency"]["p50_ms"], S3)
        res.add(f"{key}_p99", f"    {label}: latency p99", "ms", r["latency"]["p99_ms"], S3)

    try:
        with (
            run_publish_server(work / "publish-data", server_log) as server,
            httpx.Client(base_url=server.url, timeout=None) as client,
        ):
            for rep in range(RUN.reps):
                log.info("fan-out round %d/%d", rep + 1, RUN.reps)
                for n in WS_SUBSCRIBERS:
                    r = measure(client, server, n, WS_EVENTS, None, batch=False)
                    add_fast(
                        f"ws{n}", f"WS {n} subscriber{'s' if n > 1 else ''}, frame per event", r
                    )
                r = measure(client, server, 100, WS_EVENTS, None, batch=True)
                add_fast("wsb100", "WS 100 subscribers, ?batch=true (array frames)", r)
                res.add(
                    "wsb100_per_frame",
                    "    same: events per frame (mean)",
                    "ev",
                    r["events_per_frame"],
                    S3,
                )
                r = measure(client, server, 100, PACED_WS_EVENTS, PACED_RATE, batch=False)
                add_paced("ws_paced", "WS 100 subs, paced 200/s, frame per event", r)
                r = measure(client, server, 100, PACED_WS_EVENTS, PACED_RATE, batch=True)
                add_paced("wsb_paced", "WS 100 subs, paced 200/s, ?batch=true", r)
    finally:
        if server_log.exists():
            RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(server_log, RESULTS_JSON.parent / "publish-server.log")
    res.details["fanout_ws"] = details
    res.ratio(
        "ws100/ws1", "WS delivered/s: 100 vs 1 subscriber", "ws100_delivered", "ws1_delivered", S3
    )
    res.ratio(
        "wsb100/ws100",
        "WS delivered/s at 100 subs: batched vs frame per event",
        "wsb100_delivered",
        "ws100_delivered",
        S3,
    )


def run_broadcaster(res: Results, work: Path) -> None:
    details = []
    for rep in range(RUN.reps):
        log.info("broadcaster round %d/%d", rep + 1, RUN.reps)
        sqlite = broadcaster_alone("sqlite", work, events=BC_EVENTS)
        memory = broadcaster_alone("memory", work, events=BC_EVENTS)
        paced = broadcaster_alone("sqlite", work, events=BC_PACED_EVENTS, rate=PACED_RATE)
        hop = broadcaster_alone("sqlite-one-hop", work, events=BC_EVENTS)
        hop_paced = broadcaster_alone(
            "sqlite-one-hop", work, events=BC_PACED_EVENTS, rate=PACED_RATE
        )
        paced_mem = broadcaster_alone("memory", work, events=BC_PACED_EVENTS // 2, rate=PACED_RATE)
        details.append(
            {
                "sqlite": sqlite,
                "memory": memory,
                "paced": paced,
                "paced_memory": paced_mem,
                "one_hop": hop,
                "one_hop_paced": hop_paced,
            }
        )
        for run in (sqlite, memory, paced, paced_mem, hop, hop_paced):
            if not run["complete"]:
                res.notes.append(f"in-process broadcaster run incomplete: {run}")
        res.add(
            "bc_delivered",
            "in-process broadcaster, SQLite store, 100 subs: delivered/s",
            "ev/s",
            sqlite["delivered_per_s"],
            S3,
        )
        res.add(
            "bc_publish",
            "    same: events stored/s (16 publishers)",
            "ev/s",
            sqlite["publish_rate"],
            S3,
        )
        res.add("bc_p99", "    same: latency p99", "ms", sqlite["latency"]["p99_ms"], S3)
        res.add(
            "bcm_delivered",
            "in-process broadcaster, in-memory store: delivered/s",
            "ev/s",
            memory["delivered_per_s"],
            S3,
        )
        res.add(
            "bc_paced_p50",
            "in-process, SQLite store, paced 200/s to 100 subs: p50",
            "ms",
            paced["latency"]["p50_ms"],
            S3,
        )
        res.add(
            "bc_paced_p99",
            "in-process, SQLite store, paced 200/s to 100 subs: p99",
            "ms",
            paced["latency"]["p99_ms"],
            S3,
        )
        res.add(
            "bcm_paced_p99",
            "in-process, in-memory store, paced 200/s to 100 subs: p99",
            "ms",
            paced_mem["latency"]["p99_ms"],
            S3,
        )
        res.add(
            "bc1_delivered",
            "sqlite3 reference store (bench only, not the service's): delivered/s",
            "ev/s",
            hop["delivered_per_s"],
            S3,
        )
        res.add(
            "bc1_paced_p99",
            "sqlite3 reference store, paced 200/s to 100 subs: p99",
            "ms",
            hop_paced["latency"]["p99_ms"],
            S3,
        )
    res.details["broadcaster"] = details
    res.ratio(
        "bc_paced/bc1_paced",
        "paced p99: service's store vs sqlite3 reference",
        "bc_paced_p99",
        "bc1_paced_p99",
        S3,
    )
    res.ratio(
        "bcm/bc",
        "broadcaster delivered/s: memory vs SQLite store",
        "bcm_delivered",
        "bc_delivered",
        S3,
    )
    if "ws100_delivered" in res.figures:
        res.ratio(
            "bc/ws100",
            "delivered/s at 100 subs: in-process vs over the wire",
            "bc_delivered",
            "ws100_delivered",
            S3,
        )
