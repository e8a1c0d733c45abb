"""Property tests of the c2s machine: whatever the client sends, it only returns actions.

A valid negotiation prefix (nothing, header, TLS, SASL, bind) is followed by random client
elements, random bytes split at random points, and server-side closes; the machine must never
raise, every stream error must come out as ``<stream:error/>`` + closing tag + ``Close``, the
server's output must stay well-formed (the driver parses it), nothing may follow ``Close``,
and only stamped stanzas of a bound stream are routed. The second test feeds parse events
directly, including sequences no parser produces.
"""

from __future__ import annotations

from typing import Final

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.errors import StanzaError, StreamError
from roost.jid import JID
from roost.stream import events as ev
from roost.stream.c2s import C2SStream, State
from roost.xml.element import Element
from roost.xml.ns import NS_BIND, NS_CLIENT, NS_SASL, NS_STREAMS, NS_TLS
from roost.xml.parser import ParseEvent, StreamEnd, StreamHeader
from tests.unit.stream.test_c2s_driver import (
    DOMAIN,
    C2SDriver,
    auth,
    bind_as_asked,
    bind_iq,
    header,
    make_stream,
    plain,
    response,
    stream_error,
)

STARTTLS: Final = f"<starttls xmlns='{NS_TLS}'/>".encode()
PREFIXES: Final[dict[str, list[bytes]]] = {
    "nothing": [],
    "header": [header()],
    "tls": [header(), STARTTLS, header()],
    "sasl": [header(), STARTTLS, header(), plain(), header()],
    "bound": [header(), STARTTLS, header(), plain(), header(), bind_iq("balcony")],
}
SNIPPETS: Final = [
    header(),
    header(to="example.org"),
    header(version="2.0"),
    header(xml_decl=False, to=None),
    STARTTLS,
    plain(),
    plain(password="wrong"),
    plain(authzid="romeo@example.com"),
    auth("PLAIN"),
    auth("SCRAM-SHA-256"),
    auth("SCRAM-SHA-256-PLUS", b"p=tls-server-end-point,,n=juliet,r=abc"),
    auth("SCRAM-SHA-1", b"n,,n=juliet,r=abcdef"),
    auth("DIGEST-MD5", b""),
    response(b"c=biws,r=abc,p=AAAA"),
    response(b""),
    f"<abort xmlns='{NS_SASL}'/>".encode(),
    bind_iq("balcony"),
    bind_iq(None),
    bind_iq("taken"),
    bind_iq("\u0378"),
    b"<message to='romeo@example.com'><body>hi</body></message>",
    b"<message from='romeo@example.com'/>",
    b"<message from='juliet@example.com'/>",
    b"<presence/>",
    b"<iq type='get' id='q'><ping xmlns='urn:xmpp:ping'/></iq>",
    b"<iq type='result' id='r'/>",
    b"<foo xmlns='urn:example'/>",
    b"<r xmlns='urn:xmpp:sm:3'/>",
    b"</stream:stream>",
    b" \n",
]


def fuzz_binder(stream: C2SStream, resource: str | None) -> JID | StanzaError:
    if resource == "taken":
        return StanzaError("conflict")
    return bind_as_asked(stream, resource)


def check_invariants(driver: C2SDriver, quiet_close: bool) -> None:
    """What must hold after every step (the driver itself checks the order of actions)."""
    closed = driver.closed
    assert (closed is not None) == (driver.stream.state is State.CLOSED)
    if closed is None:
        return
    if closed.condition is not None:
        assert stream_error(driver.output) == closed.condition
    if not quiet_close:
        assert isinstance(driver.output[-1], StreamEnd)


# Client input: a chunk of bytes, or a server-side close (with or without an error).
Step = bytes | StreamError | None

steps = st.lists(
    st.one_of(
        st.sampled_from(SNIPPETS),
        st.binary(max_size=24),
        st.text(max_size=24).map(str.encode),
        st.sampled_from([None, StreamError("system-shutdown"), StreamError("conflict")]),
    ),
    max_size=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.sampled_from(sorted(PREFIXES)),
    tls_required=st.booleans(),
    body=steps,
    splits=st.lists(st.integers(min_value=1, max_value=64), max_size=6),
    peer_closes=st.booleans(),
)
def test_client_input_never_makes_the_machine_raise(
    prefix: str, tls_required: bool, body: list[Step], splits: list[int], peer_closes: bool
) -> None:
    driver = C2SDriver(make_stream(tls_required=tls_required), binder=fuzz_binder)
    for chunk in PREFIXES[prefix]:
        driver.send(chunk)
        check_invariants(driver, quiet_close=False)
    for step in body:
        if isinstance(step, bytes):
            for piece in split(step, splits):
                driver.send(piece)
                check_invariants(driver, quiet_close=False)
        else:
            driver.call(driver.stream.close, step)
            check_invariants(driver, quiet_close=False)
    if peer_closes:
        was_closed = driver.closed is not None
        driver.call(driver.stream.peer_closed)
        check_invariants(driver, quiet_close=not was_closed)
    if driver.routed:
        assert driver.of_type(ev.Bound)


def split(data: bytes, sizes: list[int]) -> list[bytes]:
    """Cut ``data`` into pieces of the given sizes (the rest in one piece)."""
    pieces, start = [], 0
    for size in sizes:
        if start >= len(data):
            break
        pieces.append(data[start : start + size])
        start += size
    if start < len(data):
        pieces.append(data[start:])
    return pieces


# --- parse events directly ------------------------------------------------------------------

xml_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Cn"), whitelist_characters="\t\n"),
    max_size=12,
)
headers = st.builds(
    StreamHeader,
    name=st.sampled_from(["stream", "iq", "features"]),
    xmlns=st.sampled_from([NS_STREAMS, NS_CLIENT, ""]),
    attrs=st.fixed_dictionaries(
        {},
        optional={
            "to": st.one_of(st.sampled_from([DOMAIN, "example.net", "x@example.com"]), xml_text),
            "from": xml_text,
            "version": st.one_of(st.sampled_from(["1.0", "1.1", "2.0"]), xml_text),
            "xml:lang": xml_text,
        },
    ),
    content_ns=st.sampled_from([NS_CLIENT, "jabber:server", None]),
)
payloads = st.builds(
    lambda name, ns, text: Element(name, ns, None, [text] if text else None),
    name=st.sampled_from(["bind", "resource", "ping", "body", "query"]),
    ns=st.sampled_from([NS_BIND, NS_CLIENT, "urn:xmpp:ping"]),
    text=xml_text,
)
top_level = st.builds(
    lambda name, ns, attrs, text, child: Element(
        name, ns, attrs, [c for c in (text, child) if c] or None
    ),
    name=st.sampled_from(["message", "presence", "iq", "auth", "response", "abort", "starttls"]),
    ns=st.sampled_from([NS_CLIENT, NS_SASL, NS_TLS, "urn:example"]),
    attrs=st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["get", "set", "result", "error", "chat"]),
            "id": xml_text,
            "from": st.one_of(st.just("juliet@example.com/balcony"), xml_text),
            "mechanism": st.sampled_from(["PLAIN", "SCRAM-SHA-256", "X"]),
        },
    ),
    text=st.one_of(st.just("="), st.just("AGp1bGlldAB4"), xml_text),
    child=st.one_of(st.none(), payloads),
)
parse_events = st.one_of(headers, top_level, st.just(StreamEnd()))


@settings(max_examples=150, deadline=None)
@given(
    prefix=st.sampled_from(sorted(PREFIXES)),
    batches=st.lists(st.lists(parse_events, max_size=5), max_size=5),
)
def test_any_parse_events_only_produce_actions(
    prefix: str, batches: list[list[ParseEvent]]
) -> None:
    driver = C2SDriver(binder=fuzz_binder)
    for chunk in PREFIXES[prefix]:
        driver.send(chunk)
    for batch in batches:
        driver.events(batch)
        check_invariants(driver, quiet_close=False)
