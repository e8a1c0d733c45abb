"""Process-wide limits: per-IP connections and rate, failed authentications, the memory
watchdog; and the per-connection read budget."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from roost.config import LimitsSection
from roost.core.limits import (
    Limiter,
    ReadBudget,
    address_key,
    memory_available,
    memory_in_use,
)


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


# -- what "per IP" counts: an IPv4 address, an IPv6 /64 (issue 9) -----------------------------
@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),  # IPv4 through a dual-stack socket
        ("::FFFF:c000:0201", "192.0.2.1"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:0db8:0001:0002:0000:0000:0000:0009", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),  # the scope is not part of the network
        ("::1", "::/64"),
        ("unknown", "unknown"),  # not an address (a Unix socket): counted as it is
    ],
)
def test_address_key_is_the_ipv4_address_or_the_ipv6_64(address: str, key: str) -> None:
    assert address_key(address) == key


def test_address_key_prefix_length_can_be_changed() -> None:
    assert address_key("2001:db8:1:2ff::1", 56) == "2001:db8:1:200::/56"
    assert address_key("2001:db8:1:2::1", 128) == "2001:db8:1:2::1/128"
    assert address_key("192.0.2.1", 56) == "192.0.2.1"  # IPv4 is always the address


def test_ipv6_addresses_of_one_64_share_the_unauthenticated_connections() -> None:
    limits = limiter(connections_per_ip=2, connection_rate_per_ip=100)
    assert limits.refuse_reason("2001:db8:1:2::1") is None
    assert limits.refuse_reason("2001:db8:1:2::2") is None
    assert limits.refuse_reason("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == (
        "too many unauthenticated connections from your address"
    )
    assert limits.refuse_reason("2001:db8:1:3::1") is None  # another /64 has its own count
    limits.authenticated("2001:db8:1:2::2")  # a place of the /64, whichever address took it
    assert limits.refuse_reason("2001:db8:1:2::77") is None


def test_ipv6_addresses_of_one_64_share_the_connection_rate() -> None:
    limits = limiter(connections_per_ip=100, connection_rate_per_ip=3)
    reasons = [limits.refuse_reason(f"2001:db8:1:2::{n}") for n in range(1, 5)]
    assert reasons[:3] == [None, None, None]
    assert reasons[3] == "too many new connections from your address"
    assert limits.refuse_reason("2001:db8:1:3::1") is None


def test_ipv4_mapped_address_counts_as_the_ipv4_address() -> None:
    limits = limiter(connections_per_ip=1, connection_rate_per_ip=100)
    assert limits.refuse_reason("192.0.2.3") is None
    assert limits.refuse_reason("::ffff:192.0.2.3") is not None
    assert limits.refuse_reason("192.0.2.4") is None  # IPv4 is not grouped into networks


def test_failed_authentications_from_one_64_ban_the_whole_64() -> None:
    limits = limiter(auth_failures_per_ip=3, auth_ban_time=60, connection_rate_per_ip=100)
    assert limits.auth_failed("2001:db8:1:2::1") is False
    assert limits.auth_failed("2001:db8:1:2::2") is False
    assert limits.auth_failed("2001:db8:1:2::3") is True  # three failures of one /64
    assert limits.banned("2001:db8:1:2::1")
    assert limits.banned("2001:db8:1:2:ffff::9")  # an address that never failed
    assert not limits.banned("2001:db8:1:3::1")
    reason = limits.refuse_reason("2001:db8:1:2::abcd")
    assert reason is not None
    assert "failed authentication" in reason
    assert limits.refuse_reason("2001:db8:1:3::1") is None


def test_ban_of_an_ipv4_address_is_that_address_only() -> None:
    limits = limiter(auth_failures_per_ip=1, auth_ban_time=60, connection_rate_per_ip=100)
    assert limits.auth_failed("::ffff:192.0.2.5") is True
    assert limits.banned("192.0.2.5")
    assert not limits.banned("192.0.2.6")


def test_limiter_prefix_128_counts_each_ipv6_address() -> None:
    settings = dataclasses.replace(LimitsSection(), connections_per_ip=1)
    limits = Limiter(settings, ipv6_prefix=128)
    assert limits.refuse_reason("2001:db8:1:2::1") is None
    assert limits.refuse_reason("2001:db8:1:2::2") is None
    assert limits.refuse_reason("2001:db8:1:2::2") is not None


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::ffff:127.0.0.1", "::1"])
def test_every_loopback_form_is_exempt_when_configured(address: str) -> None:
    exempt = limiter(connections_per_ip=1, connection_rate_per_ip=1, exempt_loopback=True)
    assert all(exempt.refuse_reason(address) is None for _ in range(50))
    assert not any(exempt.auth_failed(address) for _ in range(50))
    assert not exempt.banned(address)
    # ::1's /64 is ::/64, which holds no other address a client could come from; the
    # exemption is decided on the address itself, never on the network it is counted in
    assert exempt.refuse_reason("::2") is None
    assert exempt.refuse_reason("::2") is not None


# -- the read budget (read_rate, read_burst) ------------------------------------------------------
def test_read_budget_allows_a_burst_then_asks_for_the_time_to_pay_back() -> None:
    budget = ReadBudget(rate=1000, burst=2, now=0.0)
    assert budget.spend(2000, 0.0) == 0.0  # two seconds' worth at once
    assert budget.spend(500, 0.0) == pytest.approx(0.5)  # 500 bytes over: half a second
    assert budget.spend(0, 0.25) == pytest.approx(0.25)  # half of the debt paid back
    assert budget.spend(0, 0.5) == 0.0


def test_read_budget_refills_at_the_rate_up_to_the_burst_only() -> None:
    budget = ReadBudget(rate=1000, burst=2, now=0.0)
    budget.spend(2000, 0.0)
    assert budget.spend(1000, 1.0) == 0.0  # one second refilled 1000 bytes
    assert budget.spend(2000, 100.0) == 0.0  # a long pause refills the burst, no more
    assert budget.spend(1, 100.0) == pytest.approx(0.001)


# -- the memory watchdog ----------------------------------------------------------------------
class FakeMemory:
    def __init__(self, used: int | None) -> None:
        self.used = used

    def __call__(self) -> int | None:
        return self.used


def test_over_the_memory_limit_new_connections_get_resource_constraint() -> None:
    memory = FakeMemory(100 << 20)
    limits = Limiter(
        dataclasses.replace(LimitsSection(), memory_limit=200 << 20, exempt_loopback=True),
        memory=memory,
    )
    limits.sweep()
    assert limits.refuse("127.0.0.1") is None
    memory.used = 300 << 20
    limits.sweep()
    refusal = limits.refuse("127.0.0.1")
    assert refusal is not None
    assert refusal.condition == "resource-constraint"
    assert limits.metrics.rejections["memory"] == 1
    memory.used = 150 << 20  # back under: accepted again
    limits.sweep()
    assert limits.refuse("127.0.0.1") is None


def test_memory_limit_zero_is_a_share_of_the_available_memory() -> None:
    memory = FakeMemory(790)
    limits = Limiter(LimitsSection(), memory=memory, available=lambda: 1000)
    assert limits.check_memory() is False  # under 80 % of 1000
    memory.used = 810
    assert limits.check_memory() is True


def test_watchdog_is_off_where_memory_cannot_be_read() -> None:
    limits = Limiter(LimitsSection(), memory=FakeMemory(None), available=lambda: None)
    assert limits.check_memory() is False


def test_this_process_memory_is_readable_on_linux() -> None:
    if not Path("/proc/self/statm").exists():
        pytest.skip("no /proc")
    used, available = memory_in_use(), memory_available()
    assert used is not None
    assert available is not None
    assert 0 < used < available


def test_refusals_are_counted_by_reason() -> None:
    limits = limiter(connections_per_ip=1, connection_rate_per_ip=100)
    assert limits.refuse("192.0.2.7") is None
    refusal = limits.refuse("192.0.2.7")
    assert refusal is not None
    assert refusal.condition == "policy-violation"
    assert limits.metrics.rejections["connections_per_ip"] == 1
    assert limits.metrics.connections_accepted == 2
