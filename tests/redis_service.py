"""Redis for the tests: the server on 127.0.0.1:6379, reached through a channel prefix of this
test session's own, so sessions sharing the server never hear each other. Pub/sub stores no
keys, so there is nothing to clean up afterwards.

Unreachable, the tests that need it skip with the reason (fail with CHATFLOW_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

HOST = os.environ.get("CHATFLOW_TEST_REDIS_HOST", "127.0.0.1")
PORT = int(os.environ.get("CHATFLOW_TEST_REDIS_PORT", "6379"))


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    prefix: str  # this session's channel prefix

    def url(self, port: int | None = None) -> str:
        """The URL of the server, or of a proxy in front of it on ``port``."""
        host = "127.0.0.1" if port is not None else self.host
        return f"redis://{host}:{port or self.port}/0"


def connect_or_reason() -> RedisServer | str:
    """This session's Redis, or why it cannot be used here."""
    try:
        import redis
    except ImportError:
        return "redis-py is not installed (a main dependency: reinstall chatflow)"
    try:
        client = redis.Redis(host=HOST, port=PORT, socket_connect_timeout=5)
        client.ping()
        client.close()
    except Exception as error:
        return f"Redis unreachable at {HOST}:{PORT}: {error!r}"
    return RedisServer(HOST, PORT, f"chatflow_test_{uuid.uuid4().hex[:12]}")
