"""Stream-feature negotiators (roost.stream.features) from outside the stream: offers, and
elements claimed before and after binding, bytes in and elements out through the in-memory
driver of ``test_c2s_driver`` (the driver is the session the negotiator is handed).

The toys are what XEP-0198 needs: ``<r/>`` answered with ``<a h=.../>`` after binding, and
``<resume/>`` before binding, which binds the stream itself.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Final

from roost.errors import StreamError
from roost.stream import events as ev
from roost.stream.c2s import C2SStream, State
from roost.stream.features import ANY, Phase, QName, Reply
from roost.xml.element import Element
from roost.xml.ns import NS_BIND, NS_CLIENT, NS_SASL
from roost.xml.parser import ParseEvent
from tests.unit.stream.test_c2s_driver import (
    DOMAIN,
    FULL,
    C2SDriver,
    bind_iq,
    elements,
    established,
    feature_names,
    features_of,
    make_stream,
    plain,
    stanza_error,
    stream_error,
    xml,
)

NS_SM: Final = "urn:xmpp:sm:3"
MESSAGE: Final = "<message to='romeo@example.com' id='m{}'/>"


class AckRequests:
    """After binding, ``<r/>`` is answered with ``<a h='N'/>``, N the stanzas routed so far."""

    def __init__(self) -> None:
        self.sessions: list[object] = []

    def offer(self, stream: C2SStream, phase: Phase) -> Sequence[Element]:
        return (Element("sm", NS_SM),) if phase is Phase.PRE_BIND else ()

    def claims(self, phase: Phase) -> Collection[QName]:
        return {(NS_SM, "r")} if phase is Phase.BOUND else ()

    def handle(self, session: C2SDriver, element: Element) -> Reply:
        self.sessions.append(session)
        return (Element("a", NS_SM, {"h": str(len(session.routed))}),)


class Resumption:
    """Before binding, ``<resume/>`` binds the stream to FULL and answers ``<resumed/>``;
    ``<refuse/>`` answers ``<failed/>`` and leaves the stream as it was."""

    def offer(self, stream: C2SStream, phase: Phase) -> Sequence[Element]:
        return ()

    def claims(self, phase: Phase) -> Collection[QName]:
        return {(NS_SM, ANY)} if phase is Phase.PRE_BIND else ()

    def handle(self, session: C2SDriver, element: Element) -> Reply:
        if element.name != "resume":
            return (Element("failed", NS_SM),)
        session.stream.establish(FULL)
        return (Element("resumed", NS_SM, {"previd": element.get("previd") or ""}),)


def with_negotiators(*negotiators: object) -> C2SDriver:
    def negotiators_of(domain: str) -> list[object]:
        assert domain == DOMAIN
        return list(negotiators)

    return C2SDriver(make_stream(negotiators=negotiators_of))


def logged_in(*negotiators: object) -> C2SDriver:
    driver = with_negotiators(*negotiators)
    driver.login()
    return driver


def bound(*negotiators: object) -> C2SDriver:
    driver = logged_in(*negotiators)
    driver.send(bind_iq("balcony"))
    assert driver.stream.established
    return driver


def state(stream: C2SStream) -> State:
    """(A function, so that type checkers do not keep an earlier comparison's narrowing.)"""
    return stream.state


def phase(stream: C2SStream) -> Phase:
    return stream.phase


def names(events: Sequence[ParseEvent]) -> list[tuple[str, str]]:
    return [(e.xmlns, e.name) for e in elements(events)]


# --- offers ---------------------------------------------------------------------------------


def test_negotiator_offers_its_feature_after_bind_in_the_post_auth_features() -> None:
    driver = with_negotiators(AckRequests())
    assert (NS_SM, "sm") not in feature_names(features_of(driver.starttls()))
    assert names(driver.send(plain())) == [(NS_SASL, "success")]
    features = features_of(driver.open())
    assert feature_names(features) == [(NS_BIND, "bind"), (NS_SM, "sm")]


# --- claims after binding -------------------------------------------------------------------


def test_claimed_element_after_bind_is_answered_by_its_negotiator() -> None:
    acks = AckRequests()
    driver = bound(acks)
    events = driver.send(f"<r xmlns='{NS_SM}'/>")
    assert [xml(e) for e in elements(events)] == [f"<a xmlns='{NS_SM}' h='0'/>"]
    assert acks.sessions == [driver]  # handed the live session
    assert driver.closed is None
    assert driver.stream.state is State.ESTABLISHED


def test_claimed_element_is_handled_in_order_with_the_stanzas_around_it() -> None:
    driver = bound(AckRequests())
    events = driver.send(MESSAGE.format(1) + f"<r xmlns='{NS_SM}'/>" + MESSAGE.format(2))
    assert [xml(e) for e in elements(events)] == [f"<a xmlns='{NS_SM}' h='1'/>"]
    assert [r.get("id") for r in driver.routed] == ["m1", "m2"]
    kinds = [type(a) for a in driver.actions[-3:]]
    assert kinds == [Element, ev.Claimed, Element]


def test_element_the_negotiator_does_not_claim_is_still_unsupported_stanza_type() -> None:
    driver = bound(AckRequests())
    events = driver.send(f"<a xmlns='{NS_SM}' h='0'/>")
    assert stream_error(events) == "unsupported-stanza-type"
    assert driver.claimed == []


def test_element_claimed_only_after_bind_is_unsupported_before() -> None:
    driver = logged_in(AckRequests())
    events = driver.send(f"<r xmlns='{NS_SM}'/>")
    assert stream_error(events) == "unsupported-stanza-type"
    assert driver.claimed == []


def test_stanzas_are_routed_even_when_a_negotiator_claims_their_name() -> None:
    class Greedy(AckRequests):
        def claims(self, phase: Phase) -> Collection[QName]:
            return {(NS_CLIENT, "message"), (NS_CLIENT, ANY)}

    driver = bound(Greedy())
    driver.send(MESSAGE.format(1))
    assert [r.get("id") for r in driver.routed] == ["m1"]
    assert driver.claimed == []


# --- claims before binding ------------------------------------------------------------------


def test_claim_before_bind_may_establish_the_stream_and_later_stanzas_wait_for_it() -> None:
    driver = logged_in(Resumption())
    events = driver.send(f"<resume xmlns='{NS_SM}' previd='s1' h='0'/>" + MESSAGE.format(1))
    assert [xml(e) for e in elements(events)] == [f"<resumed xmlns='{NS_SM}' previd='s1'/>"]
    assert driver.stream.established
    assert driver.stream.full_jid == FULL
    assert [(r.get("id"), r.get("from")) for r in driver.routed] == [("m1", str(FULL))]
    assert driver.of_type(ev.BindRequest) == []
    assert driver.of_type(ev.Bound) == [ev.Bound(FULL)]


def test_claim_before_bind_that_does_not_establish_leaves_the_stream_negotiating() -> None:
    driver = logged_in(Resumption())
    events = driver.send(f"<refuse xmlns='{NS_SM}'/>" + bind_iq("balcony").decode())
    assert names(events)[0] == (NS_SM, "failed")
    assert driver.stream.established  # the pipelined bind request came after the claim
    assert [type(a) for a in driver.actions if isinstance(a, ev.Claimed | ev.BindRequest)] == [
        ev.Claimed,
        ev.BindRequest,
    ]


def test_input_waits_in_the_machine_until_the_claim_is_finished() -> None:
    driver = logged_in(Resumption())
    events = driver.client_parser.feed(
        f"<resume xmlns='{NS_SM}' previd='s1'/>".encode() + bind_iq("balcony")
    )
    actions = driver.stream.receive(events)
    assert [type(a) for a in actions] == [ev.Claimed]  # not performed: "in flight"
    assert state(driver.stream) is State.CLAIMED
    assert driver.stream.receive(driver.client_parser.feed(MESSAGE.format(1).encode())) == []
    (bind_request,) = driver.stream.claim_finished()  # the negotiator did not establish
    assert bind_request == ev.BindRequest("balcony")
    assert state(driver.stream) is State.BINDING
    assert [type(a) for a in driver.stream.bound(FULL)] == [ev.SendElement, ev.Bound, Element]


def test_claim_finished_after_the_stream_closed_does_nothing() -> None:
    driver = logged_in(Resumption())
    actions = driver.stream.receive(
        driver.client_parser.feed(f"<resume xmlns='{NS_SM}'/>".encode())
    )
    assert [type(a) for a in actions] == [ev.Claimed]
    driver.call(driver.stream.close, StreamError("system-shutdown"))
    assert driver.stream.claim_finished() == []
    driver.stream.establish(FULL)
    assert not driver.stream.established


def test_pre_auth_elements_are_not_offered_to_post_auth_claims() -> None:
    driver = with_negotiators(Resumption())
    driver.starttls()
    events = driver.send(f"<resume xmlns='{NS_SM}' previd='s1'/>")
    assert stream_error(events) == "not-authorized"
    assert driver.claimed == []


def test_bind_iq_is_never_claimed_by_an_outside_negotiator() -> None:
    class BindThief(Resumption):
        def claims(self, phase: Phase) -> Collection[QName]:
            return {(NS_CLIENT, "iq")}

    driver = logged_in(BindThief())
    events = driver.send(
        b"<iq type='get' id='q'/>" + bind_iq("balcony") + b"<iq type='get' id='r'/>"
    )
    assert stanza_error(elements(events)[0]) == ("auth", "not-authorized")  # as without it
    assert driver.stream.established  # the built-in bind negotiator comes first
    assert driver.claimed == []
    assert [r.get("id") for r in driver.routed] == ["r"]


def test_phase_follows_authentication_and_binding() -> None:
    driver = C2SDriver()
    assert phase(driver.stream) is Phase.PRE_AUTH
    driver.login()
    assert phase(driver.stream) is Phase.PRE_BIND
    assert established().stream.phase is Phase.BOUND
