"""The atheris targets of ``fuzz/`` under hypothesis, bounded, so ``make test`` fuzzes too and
the targets stay runnable; plus what the fuzzers found, as regressions."""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz.targets import HEADER, PREFIXES, Driver, drive_c2s, parse_stream, pieces
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.stream.c2s import State
from roost.xml.element import Element
from roost.xml.parser import StreamParser
from roost.xml.serializer import serialize

SEEDS = Path(__file__).resolve().parents[2] / "fuzz" / "seeds"
BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SNIPPETS = [
    HEADER,
    b"<message to='romeo@example.com'><body>hi</body></message>",
    b"<iq type='get' id='q'><ping xmlns='urn:xmpp:ping'/></iq>",
    b"<presence/>",
    b"</stream:stream>",
    b"<a xmlns:p='}u' p:x='1'/>",
    b"<!-- c -->",
    b"\x00",
    b"<",
    b"\xff",
]
client_stream = st.lists(
    st.one_of(st.sampled_from(SNIPPETS), st.binary(max_size=40)), max_size=12
).map(b"".join)


@BOUNDED
@given(st.binary(max_size=300))
def test_parser_target_holds_on_random_bytes(data: bytes) -> None:
    parse_stream(data)


@BOUNDED
@given(client_stream)
def test_parser_target_holds_after_a_header(data: bytes) -> None:
    parse_stream(HEADER + data)


@BOUNDED
@given(st.integers(min_value=0, max_value=len(PREFIXES) - 1), client_stream)
def test_c2s_target_holds_after_every_prefix(prefix: int, data: bytes) -> None:
    drive_c2s(bytes([prefix]) + data)


@pytest.mark.parametrize(
    ("prefix", "state"),
    [
        (0, State.AWAIT_HEADER),
        (1, State.NEGOTIATING),
        (2, State.NEGOTIATING),
        (3, State.NEGOTIATING),
        (4, State.ESTABLISHED),
    ],
)
def test_each_prefix_reaches_its_state(prefix: int, state: State) -> None:
    driver = Driver()
    for piece in PREFIXES[prefix]:
        driver.feed(piece)
    assert driver.stream.state is state
    assert driver.stream.secure is (prefix >= 2)
    assert (driver.stream.authenticated is not None) is (prefix >= 3)


@pytest.mark.parametrize("seed", sorted((SEEDS / "parser").iterdir()), ids=lambda p: p.name)
def test_parser_seeds_run(seed: Path) -> None:
    parse_stream(seed.read_bytes())


@pytest.mark.parametrize("seed", sorted((SEEDS / "c2s").iterdir()), ids=lambda p: p.name)
def test_c2s_seeds_run(seed: Path) -> None:
    drive_c2s(seed.read_bytes())


def test_reads_end_after_each_nul_byte() -> None:
    assert pieces(b"ab\x00c\x00") == [b"ab\x00", b"c\x00", b""]


def test_attribute_namespace_with_a_brace_round_trips() -> None:
    """Found by fuzz_parser: a namespace URI holding "}" made the Clark name ambiguous and
    the serializer wrote an attribute name the parser refused."""
    parser = StreamParser()
    events = parser.feed(HEADER + b"<query xmlns:p='}rn:p' p:a='0'/>")
    query = events[-1]
    assert isinstance(query, Element)
    assert query.attrs == {"{}rn:p}a": "0"}
    written = serialize(query)
    assert written == b"<query xmlns:ns1='}rn:p' ns1:a='0'/>"
    parse_stream(HEADER + written)
