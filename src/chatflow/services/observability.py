"""What a scrape of /metrics reads at that moment, and whether this process is ready."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from chatflow.errors import Unavailable
from chatflow.repositories import runs as runs_repo
from chatflow.repositories import schema as schema_repo
from chatflow.runtime import Runtime

log = logging.getLogger(__name__)

# Runs by status is one pass over the runs' status index: at most once in this many seconds,
# however often (or from however many scrapers) /metrics is asked.
SAMPLE_TTL_S = 5.0
# A probe or scrape that waits this long for the database (or Redis) calls it unreachable:
# a PostgreSQL pool that is all in use would otherwise hold it for the pool's 30 s.
CHECK_TIMEOUT_S = 2.0
READY_RETRY_AFTER_S = 5


async def scrape(*, rt: Runtime) -> bytes:
    """The Prometheus exposition of ``rt``'s metrics, with the sampled values read now."""
    rt.metrics.sample(
        runs_by_status=await _runs_by_status(rt),
        subscribers=rt.broadcaster.subscriber_count(),
        pool=rt.db.pool_connections(),
    )
    return rt.metrics.render()


async def _runs_by_status(rt: Runtime) -> Mapping[str, int] | None:
    """Counts no older than SAMPLE_TTL_S; None while the database does not answer."""
    metrics = rt.metrics
    now = time.monotonic()
    if now - metrics.runs_counted_at < SAMPLE_TTL_S:
        return metrics.runs_counted
    # Claimed before the query: scrapes meanwhile reuse the last counts instead of querying too.
    metrics.runs_counted_at = now
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), rt.db.read() as session:
            metrics.runs_counted = await runs_repo.count_by_status(session)
    except Exception as error:
        log.warning("metrics: cannot count runs (%r)", error)
        metrics.runs_counted = None
    return metrics.runs_counted


async def require_ready(*, rt: Runtime) -> None:
    """Return when the database and Redis (if configured) answer and the schema is at head;
    otherwise raise 503 ``not_ready`` saying which is not."""
    (database, migrations), redis = await asyncio.gather(_database(rt), _redis(rt))
    checks = {"database": database, "redis": redis, "migrations": migrations}
    if database == "ok" and migrations == "ok" and redis in ("ok", "not_configured"):
        return
    raise Unavailable(
        "not ready: " + ", ".join(f"{name} {state}" for name, state in checks.items()),
        code="not_ready",
        details=checks,
        headers={"Retry-After": str(READY_RETRY_AFTER_S)},
    )


async def _database(rt: Runtime) -> tuple[str, str]:
    """(database, migrations): "ok", or what is wrong, without saying more (no revisions)."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), rt.db.read() as session:
            revisions = await schema_repo.current_revisions(session)
    except Exception as error:
        log.info("readiness: the database did not answer (%r)", error)
        return "unreachable", "unknown"
    return "ok", "ok" if revisions == rt.schema_heads else "not_at_head"


async def _redis(rt: Runtime) -> str:
    if rt.relay is None:
        return "not_configured"
    return "ok" if await rt.relay.ping(CHECK_TIMEOUT_S) else "unreachable"
