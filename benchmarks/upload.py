"""Measurement 4: a ~100 MB csv streamed into the server, against a plain file copy.

The body is a hand-built multipart stream fed from a generator in 1 MiB chunks (with a
Content-Length, as a browser sends a file), so neither side holds the file in memory.  A
sampler thread reads the server's RSS (psutil) every 50 ms and watches for the inspection child
process the server starts once the bytes are in; the answer comes after that inspection, so
the upload's time is reported as "streaming" (until the last byte was handed to the socket)
and "total" (until the 201), with the child's lifetime measured separately.
"""

from __future__ import annotations

import shutil
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks.server import API, check

CHUNK = 1024 * 1024
SAMPLE_S = 0.050
MB = 1_000_000


class RssSampler:
    """Samples a process's RSS and notes its inspection children's lifetimes until stopped."""

    def __init__(self, pid: int) -> None:
        self._proc = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.samples: list[tuple[float, int]] = []
        self.children: dict[int, list[float]] = {}  # pid -> [first seen, last seen]
        self._others: set[int] = set()  # children that are not inspections (worker processes)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.perf_counter()
            try:
                self.samples.append((now, self._proc.memory_info().rss))
                for child in self._proc.children():
                    if child.pid in self._others:
                        continue
                    if child.pid not in self.children and not _is_inspection(child):
                        self._others.add(child.pid)
                        continue
                    seen = self.children.setdefault(child.pid, [now, now])
                    seen[1] = now
            except psutil.Error:
                return
            self._stop.wait(SAMPLE_S)

    def rss_between(self, start: float, end: float) -> list[int]:
        return [rss for t, rss in self.samples if start <= t <= end]


def _is_inspection(child: psutil.Process) -> bool:
    """The sandboxed inspection, not one of the long-lived step worker processes."""
    try:
        return any("spreadsheets.inspection" in part for part in child.cmdline())
    except psutil.Error:
        return False


def _multipart(
    path: Path, filename: str, boundary: str, marks: dict[str, float]
) -> Iterator[bytes]:
    yield (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()
    marks["sent"] = time.perf_counter()


def _body_length(path: Path, filename: str, boundary: str) -> int:
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    )
    return len(head.encode()) + path.stat().st_size + len(f"\r\n--{boundary}--\r\n".encode())


def stream_upload(
    client: httpx.Client, chat_id: str, path: Path, server_pid: int
) -> dict[str, Any]:
    """Upload ``path`` as a streamed multipart body; timings, RSS growth and the child's time."""
    boundary = uuid.uuid4().hex
    filename = path.name
    marks: dict[str, float] = {}
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(_body_length(path, filename, boundary)),
    }
    with RssSampler(server_pid) as sampler:
        time.sleep(0.5)  # a baseline before the upload starts
        start = time.perf_counter()
        response = client.post(
            f"{API}/chat/workflows/{chat_id}/upload",
            content=_multipart(path, filename, boundary, marks),
            headers=headers,
        )
        end = time.perf_counter()
        time.sleep(0.2)
    stored: dict[str, Any] = {}
    error = None
    if response.status_code == 201:
        stored = check(response, 201)[0]
    else:  # e.g. the inspection timed out on a loaded machine: keep the streaming figures
        error = f"{response.status_code}: {response.text[:300]}"
    baseline = sampler.rss_between(start - 0.6, start)
    during = sampler.rss_between(start, end)
    base_rss = statistics.median(baseline) if baseline else float("nan")
    peak = max(during) if during else float("nan")
    children = [seen for seen in sampler.children.values() if seen[1] >= start]
    child_s = sum(last - first for first, last in children)
    size = path.stat().st_size
    sent = marks.get("sent", end)
    return {
        "bytes": size,
        "total_s": end - start,
        "streaming_s": sent - start,
        "after_last_byte_s": end - sent,
        "inspection_child_s": child_s,
        "inspection_children": len(children),
        "mb_per_s_streaming": size / MB / (sent - start),
        "mb_per_s_total": size / MB / (end - start),
        "rss_baseline_mb": base_rss / MB,
        "rss_peak_mb": peak / MB,
        "rss_growth_mb": (peak - base_rss) / MB,
        "rows": stored.get("row_count"),
        "filename": stored.get("filename"),
        "version": stored.get("version"),
        "error": error,
    }


def delete_file(client: httpx.Client, chat_id: str, name: str) -> None:
    check(client.delete(f"{API}/chat/workflows/{chat_id}/files/{name}"), 200, 204)


def plain_copy(path: Path, dest_dir: Path) -> dict[str, float]:
    """shutil.copyfile of the same file (page cache warm, like the upload's source)."""
    dest = dest_dir / f"copy-{uuid.uuid4().hex}.csv"
    start = time.perf_counter()
    shutil.copyfile(path, dest)
    elapsed = time.perf_counter() - start
    dest.unlink()
    return {"seconds": elapsed, "mb_per_s": path.stat().st_size / MB / elapsed}
