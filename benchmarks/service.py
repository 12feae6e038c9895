"""Measurements 2, 4 and 5 on a running server: loop health, a large upload, chats at once."""

from __future__ import annotations

import logging
import statistics
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from benchmarks.data import INPUT
from benchmarks.options import Options
from benchmarks.probes import HealthPoller, RssSampler
from benchmarks.results import Results
from benchmarks.serving import API, Server, check, create_chat, upload_file
from benchmarks.sheets import EXTRACT_STEPS, through_api

log = logging.getLogger("benchmarks")
MB = 1_000_000


def run_health(
    res: Results, client: httpx.Client, server: Server, xlsx: Path, opts: Options
) -> None:
    """``GET /health`` every 20 ms from this process: on the idle server, then while (b) runs."""
    chat = create_chat(client, "bench: health")
    upload_file(client, chat, xlsx, INPUT)
    for rep in range(opts.reps):
        log.info("health round %d/%d", rep + 1, opts.reps)
        with HealthPoller(server.url) as idle:
            time.sleep(opts.idle_health_s)
        with HealthPoller(server.url) as poller:
            through_api(client, chat, EXTRACT_STEPS)
        busy = poller.summary()
        res.add("health_idle_p99", "idle server: health p99", "ms", idle.summary()["p99_ms"])
        res.add("health_p50", "while (b) runs: health p50", "ms", busy["p50_ms"])
        res.add("health_p99", "while (b) runs: health p99", "ms", busy["p99_ms"])
        res.add("health_max", "while (b) runs: health max", "ms", busy["max_ms"])


def _multipart(path: Path, boundary: str, sent: list[float]) -> Iterator[bytes]:
    yield _part_head(path, boundary)
    with path.open("rb") as fh:
        while chunk := fh.read(2**20):
            yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()
    sent.append(time.perf_counter())


def _part_head(path: Path, boundary: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()


def stream_upload(
    client: httpx.Client, chat_id: str, path: Path, server_pid: int
) -> dict[str, float]:
    """A hand-built multipart body from a generator in 1 MiB chunks, with a Content-Length (as
    a browser sends a file); the server's RSS is sampled every 50 ms meanwhile."""
    boundary = uuid.uuid4().hex
    length = len(_part_head(path, boundary)) + path.stat().st_size + len(boundary) + 8
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(length),
    }
    sent: list[float] = []
    with RssSampler(server_pid, children=False) as rss:
        time.sleep(0.5)  # a baseline before the upload starts
        start = time.perf_counter()
        response = client.post(
            f"{API}/chat/workflows/{chat_id}/upload",
            content=_multipart(path, boundary, sent),
            headers=headers,
        )
        end = time.perf_counter()
    stored = check(response, 201)[0]
    check(client.delete(f"{API}/chat/workflows/{chat_id}/files/{stored['filename']}"), 200, 204)
    baseline = statistics.median(rss.own_between(start - 0.6, start))
    size_mb = path.stat().st_size / MB
    return {
        "streaming_mbs": size_mb / ((sent[0] if sent else end) - start),
        "total_s": end - start,
        "rss_growth_mb": (max(rss.own_between(start, end)) - baseline) / MB,
    }


def run_upload(
    res: Results, client: httpx.Client, server: Server, csv: Path, opts: Options
) -> None:
    chat = create_chat(client, "bench: upload")
    warm = csv.with_name("warmup.csv")
    warm.write_text("a,b\n1,2\n", encoding="utf-8")
    upload_file(client, chat, warm, warm.name)  # first-upload costs are not counted
    for rep in range(opts.reps):
        log.info("upload round %d/%d", rep + 1, opts.reps)
        up = stream_upload(client, chat, csv, server.pid)
        res.add("up_rss", "upload: server RSS growth (peak - before)", "MB", up["rss_growth_mb"])
        res.add("up_stream_mbs", "upload: streaming throughput", "MB/s", up["streaming_mbs"])
        res.add("up_total_s", "upload: time until the 201 (incl. inspection)", "s", up["total_s"])
    res.notes.append(f"upload file: {csv.stat().st_size:,} bytes of csv, 10 columns.")


def run_scaling(
    res: Results, client: httpx.Client, server: Server, xlsx: Path, opts: Options
) -> None:
    """1, 4 and 16 chats (by default) run (b) at once, one HTTP client each, health polled."""
    chats = [create_chat(client, f"bench: scaling {i}") for i in range(max(opts.scaling_chats))]

    def run(chat_id: str, upload: bool = False) -> None:
        with httpx.Client(base_url=server.url, timeout=None) as own:
            if upload:
                upload_file(own, chat_id, xlsx, INPUT)
            else:
                through_api(own, chat_id, EXTRACT_STEPS)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda chat_id: run(chat_id, upload=True), chats))
    for rep in range(opts.reps):
        log.info("scaling round %d/%d", rep + 1, opts.reps)
        for n in opts.scaling_chats:
            with HealthPoller(server.url) as poller, ThreadPoolExecutor(n) as pool:
                started = time.perf_counter()
                list(pool.map(run, chats[:n]))
                wall = time.perf_counter() - started
            res.add(
                f"sc{n}_runs",
                f"{n} chat{'s' * (n > 1)} at once: runs/min",
                "runs/min",
                n / wall * 60,
            )
            res.add(f"sc{n}_p99", f"    {n} at once: health p99", "ms", poller.summary()["p99_ms"])
    first = opts.scaling_chats[0]
    for n in opts.scaling_chats[1:]:
        res.ratio(
            f"sc{n}/sc{first}",
            f"throughput: {n} chats vs {first}",
            f"sc{n}_runs",
            f"sc{first}_runs",
        )
