"""Tests for roost.jid: RFC 7622 address parsing, preparation and comparison."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from precis_i18n import get_profile

from roost.jid import (
    JID,
    JIDError,
    normalize_domain,
    normalize_localpart,
    normalize_resource,
)

# RFC 7622 §3.5.1: valid addresses, with the string form each prepares to.
RFC7622_VALID = [
    ("juliet@example.com", "juliet@example.com"),
    ("juliet@example.com/foo", "juliet@example.com/foo"),
    ("juliet@example.com/foo bar", "juliet@example.com/foo bar"),
    ("juliet@example.com/foo@bar", "juliet@example.com/foo@bar"),
    ("foo\\20bar@example.com", "foo\\20bar@example.com"),
    ("fussball@example.com", "fussball@example.com"),
    ("fu\u00dfball@example.com", "fu\u00dfball@example.com"),
    ("\u03c0@example.com", "\u03c0@example.com"),
    ("\u03a3@example.com/foo", "\u03c3@example.com/foo"),
    ("\u03c3@example.com/foo", "\u03c3@example.com/foo"),
    ("\u03c2@example.com/foo", "\u03c2@example.com/foo"),
    ("king@example.com/\u265a", "king@example.com/\u265a"),
    ("example.com", "example.com"),
    ("example.com/foobar", "example.com/foobar"),
    ("a.example.com/b@example.net", "a.example.com/b@example.net"),
]

# RFC 7622 §3.5.2: invalid addresses.
RFC7622_INVALID = [
    '"juliet"@example.com',  # quotation marks are disallowed in a localpart
    "foo bar@example.com",  # space is disallowed in a localpart
    "juliet@example.com/",  # empty resourcepart
    "@example.com",  # empty localpart
    "henry\u2163@example.com",  # ROMAN NUMERAL FOUR has a compatibility decomposition
    "\u265a@example.com",  # symbols are disallowed in a localpart
    "juliet@",  # empty domainpart
    "/foobar",  # empty domainpart
]


def _domain_of_length(octets: int) -> str:
    """An ASCII domain of exactly ``octets`` octets, in labels of at most 62."""
    labels = []
    while octets > 63:
        labels.append("a" * 62)
        octets -= 63
    labels.append("b" * octets)
    return ".".join(labels)


@pytest.mark.parametrize(("raw", "expected"), RFC7622_VALID)
def test_rfc7622_valid_examples_parse(raw: str, expected: str) -> None:
    assert str(JID.parse(raw)) == expected


@pytest.mark.parametrize("raw", RFC7622_INVALID)
def test_rfc7622_invalid_examples_rejected(raw: str) -> None:
    with pytest.raises(JIDError):
        JID.parse(raw)


def test_jid_error_is_value_error() -> None:
    assert issubclass(JIDError, ValueError)


def test_parts_are_split_at_first_slash_then_at_at_sign() -> None:
    jid = JID.parse("juliet@example.com/foo/bar@baz")
    assert (jid.local, jid.domain, jid.resource) == ("juliet", "example.com", "foo/bar@baz")


def test_second_at_sign_lands_in_domain_and_is_rejected() -> None:
    with pytest.raises(JIDError):
        JID.parse("user@host@example.com")


def test_absent_parts_are_none() -> None:
    jid = JID.parse("example.com")
    assert jid.local is None
    assert jid.resource is None


# Case and width mapping


def test_localpart_and_domain_are_lowercased() -> None:
    assert str(JID.parse("Juliet@Example.COM")) == "juliet@example.com"


def test_resource_case_is_preserved() -> None:
    assert str(JID.parse("Juliet@Example.COM/Balcony")) == "juliet@example.com/Balcony"


def test_fullwidth_localpart_and_domain_are_width_mapped() -> None:
    jid = JID.parse("\uff2a\uff55\uff4c\uff49\uff45\uff54@\uff45\uff58\u3002\uff43\uff4f\uff4d")
    assert str(jid) == "juliet@ex.com"


def test_fullwidth_resource_is_not_width_mapped() -> None:
    assert JID.parse("juliet@example.com/\uff26\uff2f\uff2f").resource == "\uff26\uff2f\uff2f"


def test_non_ascii_space_in_resource_maps_to_ascii_space() -> None:
    assert JID.parse("juliet@example.com/a\u3000b").resource == "a b"


def test_final_sigma_is_kept_in_localpart() -> None:
    assert JID.parse("\u03c2@example.com").local == "\u03c2"


def test_control_character_in_resource_is_rejected() -> None:
    with pytest.raises(JIDError):
        JID.parse("juliet@example.com/\x01")


# Domainparts


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("M\u00fcnchen.example", "m\u00fcnchen.example"),
        ("xn--mnchen-3ya.example", "m\u00fcnchen.example"),
        ("XN--MNCHEN-3YA.EXAMPLE", "m\u00fcnchen.example"),
        ("xn--fa-hia.de", "fa\u00df.de"),
        ("localhost", "localhost"),
        ("conference.localhost", "conference.localhost"),
        ("Example.COM", "example.com"),
        ("a--b.example", "a--b.example"),
        ("x\u200bn.example", "xn.example"),  # UTS 46 maps ZERO WIDTH SPACE to nothing
    ],
)
def test_domain_is_prepared_to_lowercase_u_labels(raw: str, expected: str) -> None:
    assert normalize_domain(raw) == expected
    assert JID.parse(f"juliet@{raw}/r").domain == expected


@pytest.mark.parametrize(
    "raw",
    [
        "ab--cd.example",  # reserved '--' in 3rd and 4th position, not an A-label
        "xn--abc.example",  # A-label that decodes to disallowed code points
        "xn--.example",
        "xn--abc-.example",
        "-a.example",
        "a-.example",
        "a b.example",
        "a..example",
        "a" * 64 + ".example",  # label over 63 octets
        "\U0001f600.example",  # emoji are not IDNA2008 PVALID
        "a_\u00fc.example",  # '_' is tolerated in ASCII labels only
        "example.com..",
        ".",
        "",
    ],
)
def test_invalid_domain_is_rejected(raw: str) -> None:
    with pytest.raises(JIDError):
        normalize_domain(raw)


def test_underscore_is_tolerated_in_ascii_labels() -> None:
    assert JID.parse("_muc.my_host.localhost").domain == "_muc.my_host.localhost"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("example.com.", "example.com"),
        ("juliet@example.com./r", "juliet@example.com/r"),
        ("M\u00fcnchen.example.", "m\u00fcnchen.example"),
        ("m\u00fcnchen.example\u3002", "m\u00fcnchen.example"),  # IDEOGRAPHIC FULL STOP
        ("[::1].", "[::1]"),
    ],
)
def test_trailing_dot_is_removed(raw: str, expected: str) -> None:
    assert str(JID.parse(raw)) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("[::1]", "[::1]"),
        ("[0:0:0:0:0:0:0:1]", "[::1]"),
        ("juliet@[2001:DB8::1]/balcony", "juliet@[2001:db8::1]/balcony"),
        ("127.0.0.1", "127.0.0.1"),
        ("juliet@192.0.2.1", "juliet@192.0.2.1"),
    ],
)
def test_ip_literals_are_accepted(raw: str, expected: str) -> None:
    assert str(JID.parse(raw)) == expected


@pytest.mark.parametrize(
    "raw", ["[::1", "[]", "[1.2.3.4]", "[fe80::1%eth0]", "[v1.x]", "[::g]", "[::1]x"]
)
def test_malformed_ip_literals_are_rejected(raw: str) -> None:
    with pytest.raises(JIDError):
        JID.parse(raw)


# Length limits (RFC 7622 §3.2-§3.4: 1023 octets of UTF-8 after preparation)


def test_localpart_limit_is_1023_octets() -> None:
    assert JID.parse("a" * 1023 + "@example.com").local == "a" * 1023
    with pytest.raises(JIDError):
        JID.parse("a" * 1024 + "@example.com")


def test_localpart_limit_counts_utf8_octets() -> None:
    JID.parse("\u00fc" * 511 + "a@example.com")  # 1023 octets
    with pytest.raises(JIDError):
        JID.parse("\u00fc" * 512 + "@example.com")  # 512 characters, 1024 octets


def test_localpart_limit_applies_after_preparation() -> None:
    fullwidth = "\uff41" * 1023  # 3069 octets raw, 1023 once width-mapped
    assert normalize_localpart(fullwidth) == "a" * 1023


def test_resourcepart_limit_is_1023_octets() -> None:
    assert JID.parse("example.com/" + "r" * 1023).resource == "r" * 1023
    with pytest.raises(JIDError):
        JID.parse("example.com/" + "r" * 1024)


def test_resourcepart_limit_counts_utf8_octets() -> None:
    JID.parse("example.com/" + "\u265a" * 341)  # 1023 octets
    with pytest.raises(JIDError):
        JID.parse("example.com/" + "\u265a" * 342)


def test_domainpart_limit_is_1023_octets() -> None:
    domain = _domain_of_length(1023)
    assert JID.parse(f"juliet@{domain}").domain == domain
    with pytest.raises(JIDError):
        JID.parse(f"juliet@{_domain_of_length(1024)}")


def test_domainpart_limit_counts_utf8_octets_of_u_labels() -> None:
    assert len(normalize_domain(_domain_of_length(1020) + ".\u00fc").encode()) == 1023
    with pytest.raises(JIDError):
        normalize_domain(_domain_of_length(1021) + ".\u00fc")  # 1023 characters


def test_huge_input_is_rejected_without_preparation() -> None:
    with pytest.raises(JIDError):
        JID.parse("\u00e9" * 100_000 + "@example.com")


# Empty parts


@pytest.mark.parametrize("raw", ["", "@", "/", "@/", "@example.com/r", "juliet@/r", "juliet@x/"])
def test_empty_parts_are_rejected(raw: str) -> None:
    with pytest.raises(JIDError):
        JID.parse(raw)


@pytest.mark.parametrize("prepare", [normalize_localpart, normalize_domain, normalize_resource])
def test_normalizing_empty_part_is_rejected(prepare: Callable[[str], str]) -> None:
    with pytest.raises(JIDError):
        prepare("")


# Localpart characters


@pytest.mark.parametrize("char", list("\"&'/:<>@"))
def test_rfc7622_forbidden_characters_rejected_in_localpart(char: str) -> None:
    with pytest.raises(JIDError):
        normalize_localpart(f"a{char}b")


@pytest.mark.parametrize("char", list("\"&'/:<>@"))
def test_fullwidth_forms_of_forbidden_characters_rejected_in_localpart(char: str) -> None:
    fullwidth = chr(ord(char) - 0x21 + 0xFF01)
    with pytest.raises(JIDError):
        normalize_localpart(f"\u00fc{fullwidth}")


@pytest.mark.parametrize("raw", ['"a@example.com', "a&b@example.com", "a:b@example.com"])
def test_forbidden_localpart_characters_rejected_by_parse(raw: str) -> None:
    with pytest.raises(JIDError):
        JID.parse(raw)


@pytest.mark.parametrize("code", range(0x80))
def test_ascii_localpart_fast_path_agrees_with_precis(code: int) -> None:
    raw = f"X{chr(code)}y"
    try:
        expected: str | None = get_profile("UsernameCaseMapped").enforce(raw)
    except UnicodeEncodeError:
        expected = None
    if expected is not None and any(c in "\"&'/:<>@" for c in expected):
        expected = None
    try:
        actual: str | None = normalize_localpart(raw)
    except JIDError:
        actual = None
    assert actual == expected


@pytest.mark.parametrize("code", range(0x80))
def test_ascii_resource_fast_path_agrees_with_precis(code: int) -> None:
    raw = f"X{chr(code)}y"
    try:
        expected: str | None = get_profile("OpaqueString").enforce(raw)
    except UnicodeEncodeError:
        expected = None
    try:
        actual: str | None = normalize_resource(raw)
    except JIDError:
        actual = None
    assert actual == expected


# The JID value


def test_with_resource_prepares_the_resource() -> None:
    bare = JID.parse("juliet@example.com")
    full = bare.with_resource("balcony\u3000one")
    assert str(full) == "juliet@example.com/balcony one"
    assert bare.is_bare
    assert not full.is_bare


def test_with_resource_replaces_an_existing_resource() -> None:
    assert str(JID.parse("juliet@example.com/a").with_resource("b")) == "juliet@example.com/b"


@pytest.mark.parametrize("resource", ["", "\x00", "r" * 1024])
def test_with_invalid_resource_is_rejected(resource: str) -> None:
    with pytest.raises(JIDError):
        JID.parse("juliet@example.com").with_resource(resource)


def test_bare_drops_the_resource_and_is_cached() -> None:
    full = JID.parse("juliet@example.com/balcony")
    assert str(full.bare) == "juliet@example.com"
    assert full.bare is full.bare
    assert full.bare.is_bare


def test_bare_of_bare_is_itself() -> None:
    bare = JID.parse("example.com")
    assert bare.bare is bare


def test_equality_and_hash_follow_the_prepared_form() -> None:
    a = JID.parse("Juliet@Example.COM/balcony")
    b = JID("juliet", "example.com", "balcony")
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != JID.parse("juliet@example.com/Balcony")
    assert a != JID.parse("juliet@example.com")
    assert a != "juliet@example.com/balcony"


def test_domain_jid_differs_from_localpart_jid() -> None:
    assert JID(None, "example.com") != JID("example.com", "example.com")


def test_parse_cache_returns_the_same_object() -> None:
    raw = "romeo@montague.example/orchard"
    assert JID.parse(raw) is JID.parse(raw)


def test_long_input_is_parsed_without_the_cache() -> None:
    raw = "romeo@montague.example/" + "r" * 1000
    assert JID.parse(raw) == JID.parse(raw)


def test_repr_round_trips() -> None:
    jid = JID.parse("juliet@example.com/balcony")
    assert eval(repr(jid), {"JID": JID}) == jid


def test_jid_is_immutable() -> None:
    jid = JID.parse("juliet@example.com")
    with pytest.raises(AttributeError):
        jid.local = "romeo"
    with pytest.raises(AttributeError):
        del jid.domain


def test_jid_survives_pickle_and_copy() -> None:
    jid = JID.parse("juliet@example.com/balcony")
    assert pickle.loads(pickle.dumps(jid)) == jid
    assert copy.copy(jid) is jid
    assert copy.deepcopy(jid) is jid


def test_importing_jid_does_not_import_asyncio_or_server_layers() -> None:
    code = (
        "import sys, roost.jid; "
        "bad = [m for m in sys.modules if m == 'asyncio' or m.startswith(('roost.core', "
        "'roost.stream'))]; "
        "sys.exit(str(bad) if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# Properties

_PIECES = [
    *"aZ09.-_@/[]:&<>\"' \t",
    "xn--",
    "\u00df",
    "\u03a3",
    "\u03c2",
    "\u00fc",
    "\u00dc",
    "\uff21",
    "\u3002",
    "\u0301",
    "\u200b",
    "\u265a",
    "\u0130",
    "\ufb00",
    "\u2163",
    "\u05d0",
    "\u0628",
    "\u3000",
    "\x00",
    "::1",
]
_jid_like = st.lists(st.one_of(st.sampled_from(_PIECES), st.characters()), max_size=24).map("".join)
_label = st.text(alphabet="abcXYZ019-_\u00df\u00fc\u00dc\u03a3\u03c2\uff21\u0301\u0130", max_size=8)
_structured = st.builds(
    "{}@{}/{}".format,
    st.text(max_size=8),
    st.lists(_label, min_size=1, max_size=3).map(".".join),
    st.text(max_size=8),
)
_address_text = st.one_of(st.text(max_size=40), _jid_like, _structured)


@settings(max_examples=600, deadline=None)
@given(_address_text)
def test_parse_raises_only_jid_error(raw: str) -> None:
    try:
        JID.parse(raw)
    except JIDError:
        pass


@settings(max_examples=600, deadline=None)
@given(_address_text)
def test_preparation_is_idempotent(raw: str) -> None:
    try:
        jid = JID.parse(raw)
    except JIDError:
        return
    again = JID.parse(str(jid))
    assert again == jid
    assert str(again) == str(jid)
    assert (again.local, again.domain, again.resource) == (jid.local, jid.domain, jid.resource)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0x7F), min_size=1, max_size=20))
def test_ascii_fast_paths_agree_with_precis(raw: str) -> None:
    for profile, prepare in (
        ("UsernameCaseMapped", normalize_localpart),
        ("OpaqueString", normalize_resource),
    ):
        try:
            expected: str | None = get_profile(profile).enforce(raw)
        except UnicodeEncodeError:
            expected = None
        if prepare is normalize_localpart and expected and set(expected) & set("\"&'/:<>@"):
            expected = None
        try:
            actual: str | None = prepare(raw)
        except JIDError:
            actual = None
        assert actual == expected
