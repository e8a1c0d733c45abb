"""Per-IP limits: unauthenticated connections, connection rate, failed authentications."""

from __future__ import annotations

import dataclasses
import time

import pytest

from roost.config import LimitsSection
from roost.core.limits import Limiter


def limiter(**changes: object) -> Limiter:
    return Limiter(dataclasses.replace(LimitsSection(), **changes))  # type: ignore[arg-type]


def test_unauthenticated_connections_per_ip_are_capped_until_one_authenticates() -> None:
    limits = limiter(connections_per_ip=2, connection_rate_per_ip=100)
    assert limits.refuse_reason("192.0.2.1") is None
    assert limits.refuse_reason("192.0.2.1") is None
    assert limits.refuse_reason("192.0.2.1") == (
        "too many unauthenticated connections from your address"
    )
    assert limits.refuse_reason("192.0.2.2") is None  # another address is not affected
    limits.authenticated("192.0.2.1")
    assert limits.refuse_reason("192.0.2.1") is None


def test_new_connections_per_second_are_rate_limited_and_refill() -> None:
    limits = limiter(connections_per_ip=100, connection_rate_per_ip=3)
    reasons = [limits.refuse_reason("192.0.2.9") for _ in range(4)]
    assert reasons[:3] == [None, None, None]
    assert reasons[3] == "too many new connections from your address"
    time.sleep(0.4)  # 3 tokens per second: at least one is back
    assert limits.refuse_reason("192.0.2.9") is None


def test_failed_authentications_ban_the_address() -> None:
    limits = limiter(auth_failures_per_ip=3, auth_ban_time=60, connection_rate_per_ip=100)
    assert limits.auth_failed("192.0.2.5") is False
    assert limits.auth_failed("192.0.2.5") is False
    assert limits.auth_failed("192.0.2.5") is True
    reason = limits.refuse_reason("192.0.2.5")
    assert reason is not None
    assert "failed authentication" in reason
    assert limits.refuse_reason("192.0.2.6") is None


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_loopback_is_exempt_only_when_configured(address: str) -> None:
    strict = limiter(connections_per_ip=1, connection_rate_per_ip=100)
    assert strict.refuse_reason(address) is None
    assert strict.refuse_reason(address) is not None
    exempt = limiter(connections_per_ip=1, exempt_loopback=True)
    assert all(exempt.refuse_reason(address) is None for _ in range(50))
    assert not any(exempt.auth_failed(address) for _ in range(50))
