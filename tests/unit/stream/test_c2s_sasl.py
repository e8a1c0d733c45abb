"""c2s SASL negotiation (RFC 6120 §6): flows, failure conditions and the per-stream limit.

scramp's ``ScramClient`` is the independent client for SCRAM and SCRAM-PLUS.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from roost.jid import JID
from roost.stream import events as ev
from roost.stream.c2s import State
from roost.xml.element import Element
from roost.xml.ns import NS_BIND, NS_SASL
from roost.xml.parser import ParseEvent, StreamEnd
from tests.unit.stream.test_c2s_driver import (
    BARE,
    CB_DATA,
    CB_TYPE,
    DOMAIN,
    PASSWORD,
    C2SDriver,
    auth,
    elements,
    feature_names,
    features_of,
    make_stream,
    only_element,
    plain,
    response,
    sasl_failure,
    stream_error,
    xml,
)

ABORT = f"<abort xmlns='{NS_SASL}'/>"


def secured(**stream_kwargs: Any) -> C2SDriver:
    """A driver past STARTTLS, looking at the mechanisms."""
    driver = C2SDriver(make_stream(**stream_kwargs))
    driver.starttls()
    return driver


def assert_failure(el: Element, condition: str) -> None:
    """``<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><condition/>...`` (§6.5)."""
    assert xml(el).startswith(f"<failure xmlns='{NS_SASL}'><{condition}/>"), xml(el)
    assert sasl_failure(el) == condition


def assert_failed(driver: C2SDriver, events: list[ParseEvent], condition: str) -> None:
    """One SASL failure, counted, the stream still open and able to try again."""
    assert_failure(only_element(events), condition)
    assert driver.of_type(ev.AuthFailed)[-1] == ev.AuthFailed(condition, None)
    assert driver.of_type(ev.Authenticated) == []
    assert driver.closed is None
    assert driver.stream.state is State.NEGOTIATING


def assert_authenticated(driver: C2SDriver, mechanism: str) -> None:
    assert driver.of_type(ev.Authenticated) == [ev.Authenticated(BARE, mechanism)]
    assert isinstance(driver.actions[-1], ev.ResetParser)
    assert driver.stream.authenticated == BARE
    assert driver.stream.state is State.AWAIT_HEADER
    assert feature_names(features_of(driver.open())) == [(NS_BIND, "bind")]


# --- successful exchanges -------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_authenticates_and_the_stream_restarts(mechanism: str) -> None:
    driver = secured()
    outcome = driver.scram(mechanism)
    assert (outcome.xmlns, outcome.name) == (NS_SASL, "success")
    assert base64.b64decode(outcome.text).startswith(b"v=")  # checked by scramp
    assert driver.lookups == [BARE]
    assert_authenticated(driver, mechanism)


def test_scram_sha_256_plus_authenticates_with_channel_binding() -> None:
    driver = secured()
    outcome = driver.scram("SCRAM-SHA-256-PLUS", channel_binding=(CB_TYPE, CB_DATA))
    assert outcome.name == "success"
    assert_authenticated(driver, "SCRAM-SHA-256-PLUS")


def test_scram_plus_with_other_channel_binding_data_is_not_authorized() -> None:
    driver = secured()
    outcome = driver.scram("SCRAM-SHA-256-PLUS", channel_binding=(CB_TYPE, b"\xff" * 32))
    assert_failure(outcome, "not-authorized")
    assert driver.of_type(ev.AuthFailed) == [ev.AuthFailed("not-authorized", None)]


def test_scram_plus_without_channel_binding_data_is_invalid_mechanism() -> None:
    driver = C2SDriver(cb_data=None)
    driver.starttls()
    outcome = driver.scram("SCRAM-SHA-256-PLUS", channel_binding=(CB_TYPE, CB_DATA))
    assert_failure(outcome, "invalid-mechanism")


def test_scram_without_tls_when_tls_is_optional_authenticates() -> None:
    driver = C2SDriver(make_stream(tls_required=False))
    driver.open()
    assert driver.scram("SCRAM-SHA-256").name == "success"
    assert not driver.stream.secure
    assert_authenticated(driver, "SCRAM-SHA-256")


def test_plain_authenticates_over_tls() -> None:
    driver = secured()
    assert [e.name for e in elements(driver.send(plain()))] == ["success"]
    assert_authenticated(driver, "PLAIN")


def test_plain_with_own_jid_as_authzid_authenticates() -> None:
    driver = secured()
    assert only_element(driver.send(plain(authzid="Juliet@Example.com"))).name == "success"
    assert_authenticated(driver, "PLAIN")


def test_username_is_case_mapped_before_lookup() -> None:
    driver = secured()
    assert only_element(driver.send(plain(username="JULIET"))).name == "success"
    assert driver.lookups == [BARE]
    assert_authenticated(driver, "PLAIN")


def test_auth_without_initial_response_gets_an_empty_challenge() -> None:
    driver = secured()
    challenge = only_element(driver.send(auth("PLAIN")))
    assert xml(challenge) == f"<challenge xmlns='{NS_SASL}'>=</challenge>"  # §6.4.2
    outcome = only_element(driver.send(response(f"\0juliet\0{PASSWORD}".encode())))
    assert outcome.name == "success"
    assert_authenticated(driver, "PLAIN")


def test_equals_sign_is_an_empty_initial_response_not_a_missing_one() -> None:
    driver = secured()
    events = driver.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>=</auth>")
    assert_failed(driver, events, "malformed-request")  # PLAIN got b"", not "no response"


# --- failure conditions (§6.5) --------------------------------------------------------------


def test_scram_wrong_password_is_not_authorized() -> None:
    driver = secured()
    assert_failure(driver.scram(password="wrong"), "not-authorized")
    assert driver.of_type(ev.AuthFailed) == [ev.AuthFailed("not-authorized", None)]
    assert driver.stream.state is State.NEGOTIATING


def test_scram_unknown_user_runs_the_whole_exchange_then_is_not_authorized() -> None:
    driver = secured()
    assert_failure(driver.scram(username="nobody"), "not-authorized")  # a challenge came first
    assert driver.lookups == [JID("nobody", DOMAIN)]


def test_plain_wrong_password_is_not_authorized() -> None:
    driver = secured()
    assert_failed(driver, driver.send(plain(password="wrong")), "not-authorized")


def test_plain_unknown_user_is_not_authorized() -> None:
    driver = secured()
    assert_failed(driver, driver.send(plain(username="nobody")), "not-authorized")


@pytest.mark.parametrize("username", ["juliet@example.com", "ju liet", "juliet/balcony"])
def test_impossible_username_fails_exactly_like_an_unknown_user_with_plain(username: str) -> None:
    unknown, impossible = secured(), secured()
    expected = unknown.send(plain(username="nobody"))
    events = impossible.send(plain(username=username))
    assert [xml(e) for e in elements(events)] == [xml(e) for e in elements(expected)]
    assert impossible.of_type(ev.AuthFailed) == unknown.of_type(ev.AuthFailed)
    assert impossible.lookups == []  # no storage lookup for a name no account can have


@pytest.mark.parametrize("username", ["juliet@example.com", "ju liet"])
def test_impossible_username_fails_exactly_like_an_unknown_user_with_scram(username: str) -> None:
    unknown, impossible = secured(), secured()
    expected = unknown.scram(username="nobody")
    outcome = impossible.scram(username=username)  # also gets a challenge first
    assert xml(outcome) == xml(expected)
    assert impossible.of_type(ev.AuthFailed) == unknown.of_type(ev.AuthFailed)
    assert impossible.lookups == []


@pytest.mark.parametrize("mechanism", ["DIGEST-MD5", "X-OAUTH2", "SCRAM-SHA-384", "plain"])
def test_unknown_mechanism_is_invalid_mechanism(mechanism: str) -> None:
    driver = secured()
    assert_failed(driver, driver.send(auth(mechanism, b"x")), "invalid-mechanism")


def test_auth_without_mechanism_is_invalid_mechanism() -> None:
    driver = secured()
    assert_failed(driver, driver.send(f"<auth xmlns='{NS_SASL}'/>"), "invalid-mechanism")


def test_plain_without_tls_is_encryption_required() -> None:
    driver = C2SDriver(make_stream(tls_required=False))
    driver.open()
    assert_failed(driver, driver.send(plain()), "encryption-required")
    assert driver.lookups == []


def test_any_auth_before_required_tls_is_encryption_required() -> None:
    driver = C2SDriver()
    driver.open()
    assert_failed(driver, driver.send(auth("SCRAM-SHA-1")), "encryption-required")


@pytest.mark.parametrize(
    "data",
    [b"juliet\0" + PASSWORD.encode(), b"\0juliet\0", b"\0\0pw", b"a\0b\0c\0d", b"\0\xffj\0pw"],
)
def test_malformed_plain_message_is_malformed_request(data: bytes) -> None:
    driver = secured()
    assert_failed(driver, driver.send(auth("PLAIN", data)), "malformed-request")


def test_response_without_an_exchange_is_malformed_request() -> None:
    driver = secured()
    assert_failed(driver, driver.send(response(b"n,,n=juliet,r=abc")), "malformed-request")


def test_auth_during_an_exchange_is_malformed_request() -> None:
    driver = secured()
    driver.send(auth("PLAIN"))
    assert_failed(driver, driver.send(plain()), "malformed-request")


def test_unknown_sasl_element_is_malformed_request() -> None:
    driver = secured()
    events = driver.send(f"<success xmlns='{NS_SASL}'/>")
    assert_failed(driver, events, "malformed-request")


@pytest.mark.parametrize("payload", ["not base64!", "AAA", "====", "élan"])
def test_invalid_base64_in_auth_is_incorrect_encoding(payload: str) -> None:
    driver = secured()
    events = driver.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
    assert_failed(driver, events, "incorrect-encoding")


def test_invalid_base64_in_response_is_incorrect_encoding() -> None:
    driver = secured()
    driver.send(auth("SCRAM-SHA-256"))
    events = driver.send(f"<response xmlns='{NS_SASL}'>%%%</response>")
    assert_failed(driver, events, "incorrect-encoding")


def test_abort_is_aborted_and_not_counted_as_a_failure() -> None:
    driver = secured(max_auth_failures=2)
    for _ in range(3):
        assert only_element(driver.send(auth("SCRAM-SHA-256"))).name == "challenge"
        assert_failure(only_element(driver.send(ABORT)), "aborted")
    assert driver.of_type(ev.AuthFailed) == []
    assert driver.stream.state is State.NEGOTIATING
    assert driver.scram().name == "success"


def test_abort_without_an_exchange_is_malformed_request() -> None:
    driver = secured()
    assert_failed(driver, driver.send(ABORT), "malformed-request")


def test_authzid_of_another_user_is_invalid_authzid() -> None:
    driver = secured()
    events = driver.send(plain(authzid="romeo@example.com"))
    assert_failed(driver, events, "invalid-authzid")
    assert driver.stream.authenticated is None


@pytest.mark.parametrize("authzid", ["juliet@example.com/balcony", "@@", "juliet@example.net"])
def test_authzid_other_than_own_bare_jid_is_invalid_authzid(authzid: str) -> None:
    driver = secured()
    assert_failed(driver, driver.send(plain(authzid=authzid)), "invalid-authzid")


# --- the per-stream failure limit -----------------------------------------------------------


def test_failures_up_to_the_limit_close_the_stream_with_not_authorized() -> None:
    driver = secured(max_auth_failures=3)
    for _ in range(2):
        assert_failed(driver, driver.send(plain(password="wrong")), "not-authorized")
    events = driver.send(plain(password="wrong"))
    assert_failure(elements(events)[0], "not-authorized")
    assert stream_error(events) == "not-authorized"
    assert isinstance(events[-1], StreamEnd)
    assert len(driver.of_type(ev.AuthFailed)) == 3
    assert driver.closed == ev.Close("not-authorized")


def test_every_kind_of_failure_counts_towards_the_limit() -> None:
    driver = secured(max_auth_failures=3)
    driver.send(auth("DIGEST-MD5"))
    driver.send(response(b"x"))
    events = driver.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>!</auth>")
    assert stream_error(events) == "not-authorized"
    assert [a.condition for a in driver.of_type(ev.AuthFailed)] == [
        "invalid-mechanism",
        "malformed-request",
        "incorrect-encoding",
    ]


def test_success_after_failures_below_the_limit_authenticates() -> None:
    driver = secured(max_auth_failures=3)
    driver.send(plain(password="wrong"))
    driver.send(plain(password="wrong"))
    assert only_element(driver.send(plain())).name == "success"
    assert_authenticated(driver, "PLAIN")


# --- order of negotiation -------------------------------------------------------------------


@pytest.mark.parametrize(
    "stanza",
    [
        "<message to='romeo@example.com'><body>hi</body></message>",
        "<presence/>",
        "<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>",
        "<iq type='result' id='2'/>",
    ],
)
@pytest.mark.parametrize("tls", [False, True])
def test_stanza_before_auth_is_not_authorized_and_never_routed(stanza: str, tls: bool) -> None:
    driver = C2SDriver()
    if tls:
        driver.starttls()
    else:
        driver.open()
    events = driver.send(stanza)
    assert stream_error(events) == "not-authorized"
    assert driver.closed == ev.Close("not-authorized")
    assert driver.routed == []
    assert not any(isinstance(a, Element) for a in driver.actions)


def test_unknown_element_before_auth_is_not_authorized() -> None:
    driver = secured()
    assert stream_error(driver.send("<enable xmlns='urn:xmpp:sm:3'/>")) == "not-authorized"


def test_auth_after_authentication_is_policy_violation() -> None:
    driver = C2SDriver()
    driver.login()
    events = driver.send(plain())
    assert stream_error(events) == "policy-violation"
    assert driver.of_type(ev.Authenticated) == [ev.Authenticated(BARE, "PLAIN")]


def test_credentials_after_the_exchange_ended_are_ignored() -> None:
    driver = secured()
    driver.send(plain(password="wrong"))
    assert driver.stream.credentials(None) == []
    assert driver.stream.credentials({}) == []
