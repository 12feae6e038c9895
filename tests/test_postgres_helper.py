"""Without PostgreSQL its tests skip with the reason, or fail where services are required."""

from __future__ import annotations

import pytest

from tests import postgres


def test_an_unreachable_server_gives_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "PORT", 1)  # nothing listens on port 1
    reason = postgres.connect_or_reason()
    assert isinstance(reason, str)
    assert reason.startswith("PostgreSQL unreachable at 127.0.0.1:1 as postgres")


def test_a_missing_service_skips_unless_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHATFLOW_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no server"):
        postgres.unavailable("no server")
    monkeypatch.setenv("CHATFLOW_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="no server .CHATFLOW_REQUIRE_SERVICES"):
        postgres.unavailable("no server")
    monkeypatch.setenv("CHATFLOW_REQUIRE_SERVICES", "0")
    with pytest.raises(pytest.skip.Exception):
        postgres.unavailable("no server")
