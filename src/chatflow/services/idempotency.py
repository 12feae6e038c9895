"""Idempotency-Key: a retried request gets the first response, and creates nothing new.

The key is claimed in the database before the work starts (a pending record, its own committed
transaction), so of two requests with one key on two processes exactly one does the work; the
other waits for its answer and replays it. docs/scaling.md, "What holds without the single
writer", says what holds and how.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from chatflow.db.models import IdempotencyRecord, utcnow
from chatflow.errors import BadRequest, Conflict, Invalid
from chatflow.repositories import idempotency as idempotency_repo
from chatflow.runtime import Runtime

TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 200
# While it works, the owner of a claim marks it alive this often; a claim not marked for
# STALE_AFTER was left by a process that died, and the next request with the key takes it
# over. A heartbeat rather than a fixed age: a request may legitimately take an hour
# (execute ?wait=true&timeout=3600), and a crashed one should not hold its key that long.
HEARTBEAT_S = 10.0
STALE_AFTER = timedelta(seconds=60)
# A request that finds the key pending reads it again after 0.1 s, doubling to 1 s.
POLL_FIRST_S = 0.1
POLL_MAX_S = 1.0
RETRY_AFTER_S = 5

log = logging.getLogger(__name__)


def fingerprint(*parts: Any) -> str:
    """A digest of what makes two requests 'the same'."""
    raw = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass
class Attempt:
    """One keyed request: ``replay`` holds the stored response if this is a retry."""

    replay: tuple[int, Any] | None = None
    _record: dict[str, Any] = field(default_factory=dict)

    def remember(self, status: int, body: Any) -> None:
        """The response to store for retries (only 2xx are kept: errors may be retried)."""
        if 200 <= status < 300:
            self._record = {"status": status, "body": body}


@dataclass(frozen=True)
class _Keyed:
    owner: str
    key: str
    scope: str
    digest: str


@asynccontextmanager
async def keyed(
    *,
    rt: Runtime,
    owner: str | None,
    key: str | None,
    scope: str,
    digest: str,
    wait_s: float | None = None,
) -> AsyncIterator[Attempt]:
    """Claim the key and do the work once, or replay the answer of whoever did.

    A request that finds the key still being worked on waits for the answer up to
    ``CHATFLOW_IDEMPOTENCY_WAIT_S``, or ``wait_s`` if longer (how long this request would
    itself wait for its work), then gets 409 ``idempotency_in_progress``.
    """
    attempt = Attempt()
    if key is None:
        yield attempt
        return
    if not key or len(key) > MAX_KEY_LENGTH:
        raise BadRequest(
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} characters", code="invalid_idempotency_key"
        )
    ident = _Keyed(owner or "", key, scope, digest)
    identity = (ident.owner, key, scope)
    bound = max(rt.settings.idempotency_wait_s, wait_s or 0.0)
    deadline = time.monotonic() + bound
    async with AsyncExitStack() as stack:
        # Within one process the lock makes a second request wait for the first without
        # polling; across processes the claim alone decides.
        try:
            async with asyncio.timeout(bound):  # bounds taking the lock, not holding it
                await stack.enter_async_context(rt.idempotency_locks.hold(identity))
        except TimeoutError:
            raise _in_progress() from None
        claimed = await _claim_or_find(rt, ident, deadline)
        if isinstance(claimed, tuple):
            attempt.replay = claimed
            yield attempt
            return
        async with _owning(rt, claimed, attempt):
            yield attempt


def _in_progress() -> Conflict:
    return Conflict(
        "a request with this Idempotency-Key is still being processed; retry later",
        code="idempotency_in_progress",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def _claim_or_find(rt: Runtime, ident: _Keyed, deadline: float) -> str | tuple[int, Any]:
    """Our claim's token, or the stored answer to replay (waiting while it is pending)."""
    delay = POLL_FIRST_S
    while True:
        token = await _claim(rt, ident)
        if token is not None:
            return token
        while True:
            found = await _find(rt, ident)
            if found is None:
                break  # abandoned or expired since: claim it again
            if found.fingerprint != ident.digest:
                raise Invalid(
                    "this Idempotency-Key was already used with a different request",
                    code="idempotency_key_reused",
                )
            if found.status is not None:
                return (found.status, found.body)
            if await _drop_if_stale(rt, found):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _in_progress()
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, POLL_MAX_S)


async def _claim(rt: Runtime, ident: _Keyed) -> str | None:
    """Insert our pending record in a transaction of its own; None when the key is taken."""
    now = utcnow()
    row = IdempotencyRecord(
        owner=ident.owner,
        key=ident.key,
        scope=ident.scope,
        fingerprint=ident.digest,
        status=None,
        body=None,
        alive_at=now,
        claim_token=uuid.uuid4().hex,
        created_at=now,
    )
    async with rt.db.write() as session:
        taken = await idempotency_repo.claim(session, row=row, expired_before=now - TTL)
    return row.claim_token if taken else None


async def _find(rt: Runtime, ident: _Keyed) -> IdempotencyRecord | None:
    async with rt.db.read() as session:
        return await idempotency_repo.get(
            session, owner=ident.owner, key=ident.key, scope=ident.scope, since=utcnow() - TTL
        )


async def _drop_if_stale(rt: Runtime, found: IdempotencyRecord) -> bool:
    """Delete a pending claim whose owner stopped beating; True if it was stale."""
    cutoff = utcnow() - STALE_AFTER
    if (found.alive_at or found.created_at) >= cutoff:
        return False
    async with rt.db.write() as session:
        dropped = await idempotency_repo.drop_stale(
            session, record_id=found.id, alive_before=cutoff
        )
    if dropped:
        log.warning("took over idempotency key %r (%s): its owner stopped", found.key, found.scope)
    return True


@asynccontextmanager
async def _owning(rt: Runtime, token: str, attempt: Attempt) -> AsyncIterator[None]:
    """Keep our claim alive while the work runs; store a 2xx answer, else give the key up."""
    beating = asyncio.create_task(_beat(rt, token))
    answered = False
    try:
        yield
        answered = bool(attempt._record)
    finally:
        beating.cancel()
        if answered:
            await _finish(rt, token, attempt._record)
        else:
            await _abandon(rt, token)


async def _beat(rt: Runtime, token: str) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        try:
            async with rt.db.write() as session:
                if not await idempotency_repo.heartbeat(session, token=token, at=utcnow()):
                    return
        except Exception:
            # A missed beat is not fatal: STALE_AFTER spans several of them.
            log.warning("idempotency claim %s: heartbeat failed", token, exc_info=True)


async def _finish(rt: Runtime, token: str, answer: dict[str, Any]) -> None:
    async with rt.db.write() as session:
        stored = await idempotency_repo.finish(
            session, token=token, status=answer["status"], body=answer["body"]
        )
        await idempotency_repo.purge(session, before=utcnow() - TTL)
    if not stored:
        log.warning("idempotency claim %s was taken over before it answered", token)


async def _abandon(rt: Runtime, token: str) -> None:
    try:
        async with rt.db.write() as session:
            await idempotency_repo.abandon(session, token=token)
    except Exception:
        # The request's own error matters more; the claim goes stale without heartbeats and
        # the next request with the key takes it over.
        log.warning("idempotency claim %s: could not give it up", token, exc_info=True)
