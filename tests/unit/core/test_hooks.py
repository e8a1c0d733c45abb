"""Hook bus and per-host stanza handler ordering: higher priority first, stop on True."""

from __future__ import annotations

from dataclasses import dataclass

from roost.core.hooks import ARCHIVE, DEFAULT, FALLBACK, FILTER, HookBus


@dataclass(frozen=True)
class Ping:
    value: int


def test_handlers_run_in_priority_order_then_registration_order() -> None:
    bus = HookBus()
    calls: list[str] = []
    bus.add(Ping, lambda e: calls.append("default-1"), DEFAULT)
    bus.add(Ping, lambda e: calls.append("fallback"), FALLBACK)
    bus.add(Ping, lambda e: calls.append("filter"), FILTER)
    bus.add(Ping, lambda e: calls.append("default-2"), DEFAULT)
    bus.add(Ping, lambda e: calls.append("archive"), ARCHIVE)
    assert bus.fire(Ping(1)) is False
    assert calls == ["filter", "archive", "default-1", "default-2", "fallback"]


def test_a_handler_returning_true_stops_the_chain() -> None:
    bus = HookBus()
    calls: list[str] = []

    def first(event: Ping) -> bool:
        calls.append("first")
        return True

    bus.add(Ping, first, FILTER)
    bus.add(Ping, lambda e: calls.append("never"), DEFAULT)
    assert bus.fire(Ping(1)) is True
    assert calls == ["first"]


def test_a_failing_handler_is_logged_and_the_chain_goes_on() -> None:
    bus = HookBus()
    calls: list[int] = []

    def broken(event: Ping) -> None:
        raise RuntimeError("boom")

    bus.add(Ping, broken, FILTER)
    bus.add(Ping, lambda e: calls.append(e.value), DEFAULT)
    bus.fire(Ping(7))
    assert calls == [7]


def test_removed_handler_is_not_called_and_other_event_types_are_separate() -> None:
    bus = HookBus()
    calls: list[int] = []

    def handler(event: Ping) -> None:
        calls.append(event.value)

    bus.add(Ping, handler)
    bus.remove(Ping, handler)
    assert bus.fire(Ping(1)) is False
    assert bus.fire("not a ping") is False
    assert calls == []
