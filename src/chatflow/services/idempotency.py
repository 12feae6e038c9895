"""Idempotency-Key: a retried request gets the first response, and creates nothing new."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from chatflow.db.models import IdempotencyRecord, utcnow
from chatflow.errors import BadRequest, Invalid
from chatflow.repositories import idempotency as idempotency_repo
from chatflow.runtime import Runtime

TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 200


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


@asynccontextmanager
async def keyed(
    *, rt: Runtime, owner: str | None, key: str | None, scope: str, digest: str
) -> AsyncIterator[Attempt]:
    """Serialize requests with the same key; replay a stored response or store the new one."""
    attempt = Attempt()
    if key is None:
        yield attempt
        return
    if not key or len(key) > MAX_KEY_LENGTH:
        raise BadRequest(
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} characters", code="invalid_idempotency_key"
        )
    identity = (owner or "", key, scope)
    async with rt.idempotency_locks.hold(identity):
        async with rt.db.read() as session:
            found = await idempotency_repo.get(
                session, owner=identity[0], key=key, scope=scope, since=utcnow() - TTL
            )
        if found is not None:
            if found.fingerprint != digest:
                raise Invalid(
                    "this Idempotency-Key was already used with a different request",
                    code="idempotency_key_reused",
                )
            attempt.replay = (found.status, found.body)
            yield attempt
            return
        yield attempt
        if attempt._record:
            async with rt.db.write() as session:
                await idempotency_repo.purge(session, before=utcnow() - TTL)
                await idempotency_repo.put(
                    session,
                    row=IdempotencyRecord(
                        owner=identity[0],
                        key=key,
                        scope=scope,
                        fingerprint=digest,
                        status=attempt._record["status"],
                        body=attempt._record["body"],
                    ),
                )
