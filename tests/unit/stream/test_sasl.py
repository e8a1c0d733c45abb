"""SASL server (roost.stream.sasl): bytes in, steps out, against independent clients.

scramp's ScramClient drives the SCRAM exchanges; slixmpp's SCRAM mechanism is the client for
what scramp cannot send (an authzid, a username outside SASLprep's Unicode 3.2).
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scramp import ScramClient
from slixmpp.util.sasl import mechanisms as slixmpp_mechanisms

from roost.auth.credentials import DEFAULT_ITERATIONS, Credentials, derive, verify_password
from roost.stream.sasl import (
    Challenge,
    Failure,
    NeedCredentials,
    SaslServer,
    SaslStep,
    Success,
    VerifyPassword,
    downgrade_protection_hash,
    offered_mechanisms,
)

USER = "juliet"
PASSWORD = "r0m30myr0m30"
CREDS = derive(PASSWORD)
ACCOUNTS: dict[str, Credentials] = {USER: CREDS, "ju,li=et": CREDS, "മൺ": CREDS}
CB_TYPE = "tls-server-end-point"
CB_DATA = b"\x01" * 32
ALL_OFFERED = offered_mechanisms(tls=True, channel_binding=True)
NO_PLUS_OFFERED = offered_mechanisms(tls=True, channel_binding=False)
SCRAM_MECHANISMS = ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"]
PLUS_MECHANISMS = [m + "-PLUS" for m in SCRAM_MECHANISMS]
SERVER_FIRST = re.compile(
    r"r=([!-+\--~]+),s=([A-Za-z0-9+/]+=*),i=([1-9][0-9]*),h=([A-Za-z0-9+/]+=*)"
)
NOT_AUTHORIZED = Failure("not-authorized")


def make_server(
    mechanism: str,
    *,
    offered: list[str] = ALL_OFFERED,
    cb_data: bytes | None = CB_DATA,
    tls: bool = True,
    secret: bytes | None = None,
) -> SaslServer:
    return SaslServer(
        mechanism, offered=offered, cb_data=cb_data, tls=tls, unknown_user_secret=secret
    )


def scram_client(mechanism: str, password: str = PASSWORD, **kwargs: Any) -> Any:
    username = kwargs.pop("username", USER)
    return ScramClient([mechanism], username, password, **kwargs)


def run_scram(
    server: SaslServer, client: Any, lookup: dict[str, Credentials] = ACCOUNTS
) -> list[SaslStep]:
    """Drive a full exchange with a scramp client; stop at the first unexpected step."""
    steps: list[SaslStep] = [server.start(client.get_client_first().encode())]
    if isinstance(steps[-1], NeedCredentials):
        steps.append(server.credentials(lookup.get(steps[-1].username)))
    if isinstance(steps[-1], Challenge):
        client.set_server_first(steps[-1].data.decode())
        steps.append(server.respond(client.get_client_final().encode()))
    return steps


def to_server_first(server: SaslServer, client_first: bytes) -> bytes:
    """Start an exchange for USER and return the server-first-message."""
    assert server.start(client_first) == NeedCredentials(USER)
    step = server.credentials(CREDS)
    assert isinstance(step, Challenge)
    return step.data


def salt_of(server_first: bytes) -> bytes:
    match = SERVER_FIRST.fullmatch(server_first.decode())
    assert match is not None
    return base64.b64decode(match[2])


def slixmpp_client(mechanism: str, username: str, authzid: str = "") -> Any:
    credentials = {
        "username": username.encode(),
        "password": PASSWORD.encode(),
        "authzid": authzid.encode(),
        "channel_binding": b"",
    }
    security = {"encrypted": True, "unencrypted_scram": True, "binding_proposed": True}
    scram: Any = slixmpp_mechanisms.SCRAM  # untyped
    return scram(mechanism, credentials, security)


# --- mechanisms offered ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tls", "channel_binding", "expected"),
    [
        (False, False, SCRAM_MECHANISMS[::-1]),
        (True, False, [*SCRAM_MECHANISMS[::-1], "PLAIN"]),
        (False, True, PLUS_MECHANISMS[::-1] + SCRAM_MECHANISMS[::-1]),
        (True, True, PLUS_MECHANISMS[::-1] + SCRAM_MECHANISMS[::-1] + ["PLAIN"]),
    ],
)
def test_offered_mechanisms_strongest_first_plain_only_with_tls(
    tls: bool, channel_binding: bool, expected: list[str]
) -> None:
    assert offered_mechanisms(tls=tls, channel_binding=channel_binding) == expected


@pytest.mark.parametrize(
    ("mechanism", "offered", "cb_data"),
    [
        ("DIGEST-MD5", ALL_OFFERED, CB_DATA),
        ("scram-sha-1", ALL_OFFERED, CB_DATA),
        ("SCRAM-SHA-1-PLUS", NO_PLUS_OFFERED, CB_DATA),
        ("PLAIN", ["SCRAM-SHA-256"], CB_DATA),
        ("SCRAM-SHA-256-PLUS", ALL_OFFERED, None),
        ("SCRAM-SHA3-512", ["SCRAM-SHA3-512"], CB_DATA),
    ],
)
def test_unknown_unoffered_or_unusable_mechanism_is_invalid_mechanism(
    mechanism: str, offered: list[str], cb_data: bytes | None
) -> None:
    server = make_server(mechanism, offered=offered, cb_data=cb_data)
    assert server.start(b"\x00juliet\x00pw") == Failure("invalid-mechanism")
    assert server.done


# --- SCRAM end to end -----------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", SCRAM_MECHANISMS + PLUS_MECHANISMS)
def test_scram_succeeds_with_right_password_and_proves_server(mechanism: str) -> None:
    binding = (CB_TYPE, CB_DATA) if mechanism.endswith("-PLUS") else None
    client = scram_client(mechanism, channel_binding=binding)
    server = make_server(mechanism)
    steps = run_scram(server, client)
    assert steps[0] == NeedCredentials(USER)
    final = steps[-1]
    assert isinstance(final, Success)
    assert (final.username, final.authzid) == (USER, None)
    assert final.data is not None
    client.set_server_final(final.data.decode())  # raises if ServerSignature is wrong
    assert server.done


@pytest.mark.parametrize("mechanism", SCRAM_MECHANISMS + PLUS_MECHANISMS)
def test_scram_wrong_password_is_not_authorized(mechanism: str) -> None:
    binding = (CB_TYPE, CB_DATA) if mechanism.endswith("-PLUS") else None
    client = scram_client(mechanism, "wrong password", channel_binding=binding)
    steps = run_scram(make_server(mechanism), client)
    assert [type(s) for s in steps] == [NeedCredentials, Challenge, Failure]
    assert steps[-1] == NOT_AUTHORIZED


def test_scram_without_initial_response_sends_empty_challenge_first() -> None:
    client = scram_client("SCRAM-SHA-256")
    server = make_server("SCRAM-SHA-256")
    assert server.start(None) == Challenge(b"")
    assert server.respond(client.get_client_first().encode()) == NeedCredentials(USER)
    step = server.credentials(CREDS)
    assert isinstance(step, Challenge)
    client.set_server_first(step.data.decode())
    assert isinstance(server.respond(client.get_client_final().encode()), Success)


def test_scram_username_escapes_are_decoded() -> None:
    sent = scram_client("SCRAM-SHA-256", username="ju,li=et").get_client_first()
    assert "n=ju=2Cli=3Det," in sent
    steps = run_scram(  # a fresh client: scramp sends its first message once
        make_server("SCRAM-SHA-256"), scram_client("SCRAM-SHA-256", username="ju,li=et")
    )
    assert steps[0] == NeedCredentials("ju,li=et")
    assert isinstance(steps[-1], Success)
    assert steps[-1].username == "ju,li=et"


@pytest.mark.parametrize(
    ("username", "authzid"), [(USER, "juliet@example.org"), ("മൺ", ""), ("ju,li=et", "a,b=c")]
)
def test_scram_authzid_and_precis_username_from_slixmpp_client(username: str, authzid: str) -> None:
    client = slixmpp_client("SCRAM-SHA-256", username, authzid)
    server = make_server("SCRAM-SHA-256")
    assert server.start(client.process(b"")) == NeedCredentials(username)
    challenge = server.credentials(ACCOUNTS[username])
    assert isinstance(challenge, Challenge)
    success = server.respond(client.process(challenge.data))
    assert isinstance(success, Success)
    assert (success.username, success.authzid) == (username, authzid or None)
    assert success.data is not None
    client.process(success.data)  # slixmpp checks the ServerSignature


@pytest.mark.parametrize("authz", [b"a=", b"a=ju=41", b"b=juliet", b"a=x=2"])
def test_scram_malformed_authzid_is_invalid_authzid(authz: bytes) -> None:
    step = make_server("SCRAM-SHA-256").start(b"n," + authz + b",n=juliet,r=abcdef")
    assert isinstance(step, Failure)
    assert step.condition == "invalid-authzid"


# --- unknown users look like wrong passwords ------------------------------------------------


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-512", "SCRAM-SHA-256-PLUS"])
def test_scram_unknown_user_fails_exactly_like_wrong_password(mechanism: str) -> None:
    binding = (CB_TYPE, CB_DATA) if mechanism.endswith("-PLUS") else None
    wrong = run_scram(
        make_server(mechanism), scram_client(mechanism, "nope", channel_binding=binding)
    )
    unknown = run_scram(
        make_server(mechanism), scram_client(mechanism, username="romeo", channel_binding=binding)
    )
    assert [type(s) for s in unknown] == [type(s) for s in wrong]
    assert unknown[-1] == wrong[-1] == NOT_AUTHORIZED


def test_scram_unknown_user_server_first_has_the_shape_of_a_known_one() -> None:
    known = to_server_first(make_server("SCRAM-SHA-256"), b"n,,n=juliet,r=abcdef")
    server = make_server("SCRAM-SHA-256")
    assert server.start(b"n,,n=romeo,r=abcdef") == NeedCredentials("romeo")
    unknown = server.credentials(None)
    assert isinstance(unknown, Challenge)
    known_match = SERVER_FIRST.fullmatch(known.decode())
    unknown_match = SERVER_FIRST.fullmatch(unknown.data.decode())
    assert known_match is not None
    assert unknown_match is not None
    assert len(unknown_match[1]) == len(known_match[1])
    assert len(salt_of(unknown.data)) == len(salt_of(known))
    assert unknown_match[3] == known_match[3]


def unknown_salt(
    username: str, mechanism: str = "SCRAM-SHA-256", secret: bytes | None = None
) -> bytes:
    server = make_server(mechanism, secret=secret)
    assert isinstance(server.start(f"n,,n={username},r=abcdef".encode()), NeedCredentials)
    step = server.credentials(None)
    assert isinstance(step, Challenge)
    return salt_of(step.data)


def test_scram_unknown_user_salt_is_stable_per_username() -> None:
    assert unknown_salt("romeo") == unknown_salt("romeo")
    assert unknown_salt("Romeo") == unknown_salt("romeo")  # as a real account after PRECIS
    assert unknown_salt("romeo") != unknown_salt("mercutio")
    assert unknown_salt("romeo", "SCRAM-SHA-1") != unknown_salt("romeo", "SCRAM-SHA-512")
    assert unknown_salt("ro meo") == unknown_salt("ro meo")  # not a valid PRECIS username


def test_scram_unknown_user_salt_follows_the_shared_secret() -> None:
    assert unknown_salt("romeo", secret=b"k" * 32) == unknown_salt("romeo", secret=b"k" * 32)
    assert unknown_salt("romeo", secret=b"k" * 32) != unknown_salt("romeo", secret=b"j" * 32)


def test_scram_user_without_keys_for_the_hash_fails_like_unknown_user() -> None:
    only_sha1 = {"SHA-1": CREDS["SHA-1"]}
    steps = run_scram(
        make_server("SCRAM-SHA-256"), scram_client("SCRAM-SHA-256"), {USER: only_sha1}
    )
    assert [type(s) for s in steps] == [NeedCredentials, Challenge, Failure]
    assert steps[-1] == NOT_AUTHORIZED


# --- downgrade protection (XEP-0474 0.5.0) -------------------------------------------------


def client_ssdp(hash_name: str, mechanisms: list[str], cb_types: list[str] | None) -> str:
    """What a client computes from the advertised lists, written out from XEP-0474 §5.1."""
    octets = b"\x1e".join(sorted(m.encode("ascii") for m in mechanisms))
    if cb_types is not None:
        octets += b"\x1f" + b"\x1e".join(sorted(t.encode("ascii") for t in cb_types))
    return base64.b64encode(hashlib.new(hash_name, octets).digest()).decode()


def test_downgrade_protection_hash_matches_the_xep_example() -> None:
    # XEP-0474 §5.3: SCRAM-SHA-1(-PLUS), tls-server-end-point and tls-exporter advertised.
    mechanisms = ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"]
    bindings = ["tls-server-end-point", "tls-exporter"]
    assert downgrade_protection_hash("SHA-1", mechanisms, bindings) == (
        "G6k/rBLDqgOhRRaCuuatSDFkJ08="
    )


@pytest.mark.parametrize(
    ("mechanism", "tls", "cb_data"),
    [
        ("SCRAM-SHA-1-PLUS", True, CB_DATA),
        ("SCRAM-SHA-256-PLUS", False, CB_DATA),
        ("SCRAM-SHA-512-PLUS", True, CB_DATA),
        ("SCRAM-SHA-1", True, CB_DATA),  # no binding used, but it was advertised
        ("SCRAM-SHA-256", False, CB_DATA),
        ("SCRAM-SHA-512", True, None),  # nothing to bind to: no XEP-0440 list at all
        ("SCRAM-SHA-256", False, None),
    ],
)
def test_server_first_carries_ssdp_hash_of_the_advertised_lists(
    mechanism: str, tls: bool, cb_data: bytes | None
) -> None:
    advertised = offered_mechanisms(tls=tls, channel_binding=cb_data is not None)
    cb_types = [CB_TYPE] if cb_data is not None else None
    binding = (CB_TYPE, CB_DATA) if mechanism.endswith("-PLUS") else None
    client = scram_client(mechanism, channel_binding=binding)
    server = make_server(mechanism, offered=advertised, cb_data=cb_data, tls=tls)
    server_first = to_server_first(server, client.get_client_first().encode())
    match = SERVER_FIRST.fullmatch(server_first.decode())
    assert match is not None
    hash_name = mechanism.removeprefix("SCRAM-").removesuffix("-PLUS").replace("-", "").lower()
    assert match[4] == client_ssdp(hash_name, advertised, cb_types)
    # scramp accepts the extension attribute and the exchange (which signs it) succeeds.
    client.set_server_first(server_first.decode())
    step = server.respond(client.get_client_final().encode())
    assert isinstance(step, Success)
    assert step.data is not None
    client.set_server_final(step.data.decode())


def test_ssdp_hash_reveals_a_stripped_mechanism_or_binding_list() -> None:
    server_first = to_server_first(make_server("SCRAM-SHA-256"), b"n,,n=juliet,r=abcdef")
    match = SERVER_FIRST.fullmatch(server_first.decode())
    assert match is not None
    assert match[4] == client_ssdp("sha256", ALL_OFFERED, [CB_TYPE])
    assert match[4] != client_ssdp("sha256", NO_PLUS_OFFERED, None)  # -PLUS and cb removed
    assert match[4] != client_ssdp("sha256", ALL_OFFERED, [])  # cb types removed
    assert match[4] != client_ssdp("sha256", ALL_OFFERED[:-1], [CB_TYPE])  # PLAIN removed


def test_unknown_user_gets_the_same_ssdp_hash() -> None:
    known = to_server_first(make_server("SCRAM-SHA-256"), b"n,,n=juliet,r=abcdef")
    server = make_server("SCRAM-SHA-256")
    assert server.start(b"n,,n=romeo,r=abcdef") == NeedCredentials("romeo")
    unknown = server.credentials(None)
    assert isinstance(unknown, Challenge)
    known_match = SERVER_FIRST.fullmatch(known.decode())
    unknown_match = SERVER_FIRST.fullmatch(unknown.data.decode())
    assert known_match is not None
    assert unknown_match is not None
    assert unknown_match[4] == known_match[4]


# --- channel binding (RFC 5802 §6, RFC 5929) ------------------------------------------------


def test_y_flag_is_refused_as_downgrade_when_plus_was_offered() -> None:
    client_first = scram_client(
        "SCRAM-SHA-256", channel_binding=(CB_TYPE, CB_DATA)
    ).get_client_first()
    assert client_first.startswith("y,,")
    step = make_server("SCRAM-SHA-256").start(client_first.encode())
    assert isinstance(step, Failure)
    assert step.condition == "not-authorized"


def test_y_flag_is_accepted_when_no_plus_was_offered() -> None:
    client = scram_client("SCRAM-SHA-256", channel_binding=(CB_TYPE, CB_DATA))
    steps = run_scram(make_server("SCRAM-SHA-256", offered=NO_PLUS_OFFERED, cb_data=None), client)
    assert isinstance(steps[-1], Success)


def test_plus_with_wrong_channel_binding_data_is_not_authorized() -> None:
    client = scram_client("SCRAM-SHA-256-PLUS", channel_binding=(CB_TYPE, b"\x02" * 32))
    steps = run_scram(make_server("SCRAM-SHA-256-PLUS"), client)
    assert [type(s) for s in steps] == [NeedCredentials, Challenge, Failure]
    assert isinstance(steps[-1], Failure)
    assert steps[-1].condition == "not-authorized"


def test_plus_with_unsupported_binding_type_is_not_authorized() -> None:
    client = scram_client("SCRAM-SHA-256-PLUS", channel_binding=("tls-unique", CB_DATA))
    first = client.get_client_first()
    assert first.startswith("p=tls-unique,,")
    step = make_server("SCRAM-SHA-256-PLUS").start(first.encode())
    assert isinstance(step, Failure)
    assert step.condition == "not-authorized"


@pytest.mark.parametrize("flag", [b"n", b"y"])
def test_plus_without_p_flag_is_malformed(flag: bytes) -> None:
    step = make_server("SCRAM-SHA-1-PLUS").start(flag + b",,n=juliet,r=abcdef")
    assert isinstance(step, Failure)
    assert step.condition == "malformed-request"


def test_p_flag_on_mechanism_without_binding_is_malformed() -> None:
    step = make_server("SCRAM-SHA-256").start(b"p=tls-server-end-point,,n=juliet,r=abcdef")
    assert isinstance(step, Failure)
    assert step.condition == "malformed-request"


def test_plus_binding_covers_the_gs2_header_with_authzid() -> None:
    server = make_server("SCRAM-SHA-256-PLUS")
    header = b"p=tls-server-end-point,a=juliet,"
    server_first = to_server_first(server, header + b"n=juliet,r=abcdef")
    nonce = SERVER_FIRST.fullmatch(server_first.decode())
    assert nonce is not None
    cbind = base64.b64encode(b"p=tls-server-end-point,,").decode()  # the header without a=
    proof = base64.b64encode(b"\x00" * 32).decode()
    step = server.respond(f"c={cbind},r={nonce[1]},p={proof}".encode())
    assert step == Failure("not-authorized", "channel binding mismatch")


# --- malformed SCRAM messages ---------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"garbage",
        b"n,,",
        b"n,,n=juliet",
        b"n,,r=abcdef,n=juliet",  # wrong order
        b"x,,n=juliet,r=abcdef",  # unknown gs2 flag
        b"p=,,n=juliet,r=abcdef",  # empty cb-name
        b"p=tls_unique,,n=juliet,r=abcdef",  # bad cb-name character
        b"n,,n=juliet,r=",  # empty nonce
        b"n,,n=juliet,r=ab cd",  # nonce not printable
        b"n,,n=,r=abcdef",  # empty username
        b"n,,n=ju=41liet,r=abcdef",  # bad escape
        b"n,,m=ext,n=juliet,r=abcdef",  # mandatory extension
        b"n,,n=juliet,r=abcdef,",  # trailing comma
        b"n,,n=juliet,r=abcdef,i=4096",  # defined attribute as extension
        b"n,,n=juliet,r=abcdef,x",  # extension without value
        b"n,,n=juliet,r=abcdef,1=2",  # extension name not a letter
        b"n,,n=jul\x00iet,r=abcdef",  # NUL
        b"n,,n=jul\xffiet,r=abcdef",  # not UTF-8
    ],
)
def test_malformed_scram_client_first_is_malformed_request(message: bytes) -> None:
    server = make_server("SCRAM-SHA-256")
    step = server.start(message)
    assert isinstance(step, Failure)
    assert step.condition == "malformed-request"
    assert server.done


def test_scram_client_first_extensions_are_ignored() -> None:
    assert make_server("SCRAM-SHA-1").start(b"n,,n=juliet,r=abcdef,x=1,Y=a=b") == NeedCredentials(
        USER
    )


def scram_at_final(mechanism: str = "SCRAM-SHA-256") -> tuple[SaslServer, str]:
    """A server waiting for client-final, and the nonce it expects."""
    server = make_server(mechanism)
    match = SERVER_FIRST.fullmatch(to_server_first(server, b"n,,n=juliet,r=abcdef").decode())
    assert match is not None
    return server, match[1]


def test_scram_wrong_nonce_is_malformed_request() -> None:
    client = scram_client("SCRAM-SHA-256")
    server = make_server("SCRAM-SHA-256")
    server_first = to_server_first(server, client.get_client_first().encode())
    client.set_server_first(server_first.decode())
    final = client.get_client_final()
    nonce = SERVER_FIRST.fullmatch(server_first.decode())
    assert nonce is not None
    tampered = final.replace(nonce[1], nonce[1][:-1] + ("A" if nonce[1][-1] != "A" else "B"))
    step = server.respond(tampered.encode())
    assert isinstance(step, Failure)
    assert step.condition == "malformed-request"


@pytest.mark.parametrize(
    "template",
    [
        "",
        "garbage",
        "c=biws,r={nonce}",  # no proof
        "r={nonce},c=biws,p=AAAA",  # wrong order
        "c=biws,p=AAAA,r={nonce}",  # proof not last
        "c=biws,r={nonce},p=",  # empty proof
        "c=biws,r={nonce},p=!!!!",  # bad base64
        "c=biws,r={nonce},p=AAA",  # bad padding
        "c=,r={nonce},p=AAAA",  # empty channel binding
        "c=biws,r={nonce},i=4096,p=AAAA",  # defined attribute as extension
        "c=biws,r={nonce},junk,p=AAAA",
        "c=biws,r={nonce},p=AAAA,",
        "c=biws,r={nonce}\x00,p=AAAA",
        "c=biws,r={nonce},p=AAAA\udcff",  # encoded below as surrogateescape: not UTF-8
    ],
)
def test_malformed_scram_client_final_is_malformed_request(template: str) -> None:
    server, nonce = scram_at_final()
    step = server.respond(template.format(nonce=nonce).encode("utf-8", "surrogateescape"))
    assert isinstance(step, Failure)
    assert step.condition == "malformed-request"


@pytest.mark.parametrize("proof", [b"\x00" * 32, b"\x00" * 31, b"\x00" * 64])
def test_scram_bad_proof_of_any_length_is_not_authorized(proof: bytes) -> None:
    server, nonce = scram_at_final()
    p = base64.b64encode(proof).decode()
    assert server.respond(f"c=biws,r={nonce},x=ext,p={p}".encode()) == NOT_AUTHORIZED


# --- PLAIN (RFC 4616) -----------------------------------------------------------------------


def check(step: SaslStep) -> bool:
    """What the driver does for ``VerifyPassword`` (off the event loop)."""
    assert isinstance(step, VerifyPassword), step
    return verify_password(step.credentials, step.password)


def run_plain(message: bytes, creds: Credentials | None = CREDS, **kwargs: Any) -> list[SaslStep]:
    server = make_server("PLAIN", **kwargs)
    steps = [server.start(message)]
    if isinstance(steps[-1], NeedCredentials):
        steps.append(server.credentials(creds))
        assert not server.done  # the password check is the driver's
        steps.append(server.password_checked(check(steps[-1])))
    assert server.done
    return steps


def test_plain_succeeds_with_right_password() -> None:
    steps = run_plain(f"\x00{USER}\x00{PASSWORD}".encode())
    assert steps == [
        NeedCredentials(USER),
        VerifyPassword(CREDS, PASSWORD),
        Success(None, USER, None),
    ]


def test_plain_hands_the_pbkdf2_to_the_driver_instead_of_running_it() -> None:
    server = make_server("PLAIN")
    assert server.start(f"\x00{USER}\x00{PASSWORD}".encode()) == NeedCredentials(USER)
    step = server.credentials(CREDS)
    assert step == VerifyPassword(CREDS, PASSWORD)
    assert not server.done
    assert PASSWORD not in repr(step)  # never in a log line
    assert server.password_checked(False) == NOT_AUTHORIZED


def test_plain_unknown_user_is_checked_against_fake_keys_and_never_succeeds() -> None:
    server = make_server("PLAIN")
    server.start(f"\x00romeo\x00{PASSWORD}".encode())
    step = server.credentials(None)
    assert isinstance(step, VerifyPassword)
    assert [(h, k.iterations) for h, k in step.credentials.items()] == [
        ("SHA-256", DEFAULT_ITERATIONS)  # the same PBKDF2 as a known user's
    ]
    assert server.password_checked(True) == NOT_AUTHORIZED


def test_password_checked_out_of_order_is_malformed_request() -> None:
    assert malformed(make_server("PLAIN").password_checked(True))
    server = make_server("SCRAM-SHA-256")
    assert isinstance(server.start(b"n,,n=juliet,r=abcdef"), NeedCredentials)
    assert malformed(server.password_checked(True))


def test_plain_returns_authzid_for_the_driver_to_check() -> None:
    steps = run_plain(f"juliet@example.org\x00{USER}\x00{PASSWORD}".encode())
    assert steps[-1] == Success(None, USER, "juliet@example.org")


def test_plain_without_initial_response_sends_empty_challenge_first() -> None:
    server = make_server("PLAIN")
    assert server.start(None) == Challenge(b"")
    assert server.respond(f"\x00{USER}\x00{PASSWORD}".encode()) == NeedCredentials(USER)
    step = server.credentials(CREDS)
    assert server.password_checked(check(step)) == Success(None, USER, None)


def test_plain_wrong_password_is_not_authorized() -> None:
    assert run_plain(f"\x00{USER}\x00nope".encode())[-1] == NOT_AUTHORIZED


@pytest.mark.parametrize("username", ["romeo", "ro meo"])
def test_plain_unknown_user_fails_exactly_like_wrong_password(username: str) -> None:
    wrong = run_plain(f"\x00{USER}\x00nope".encode())
    unknown = run_plain(f"\x00{username}\x00{PASSWORD}".encode(), creds=None)
    assert [type(s) for s in unknown] == [type(s) for s in wrong]
    assert unknown[-1] == wrong[-1] == NOT_AUTHORIZED


@pytest.mark.parametrize(
    "message",
    [
        b"",  # empty initial response ("=")
        b"juliet",
        b"juliet\x00password",  # one NUL
        b"\x00juliet\x00",  # empty password
        b"\x00\x00password",  # empty authcid
        b"\x00juliet\x00pass\x00word",  # three NULs
        b"\x00juliet\x00password\x00",
        b"authz\x00\x00juliet\x00password",
        b"\x00jul\xffiet\x00password",  # authcid not UTF-8
        b"\x00juliet\x00pass\xc3",  # password not UTF-8
    ],
)
def test_plain_bad_framing_is_malformed_request(message: bytes) -> None:
    steps = run_plain(message)
    assert len(steps) == 1
    assert isinstance(steps[0], Failure)
    assert steps[0].condition == "malformed-request"


def test_plain_authzid_not_utf8_is_invalid_authzid() -> None:
    step = run_plain(b"\xff\xfe\x00juliet\x00password")[0]
    assert isinstance(step, Failure)
    assert step.condition == "invalid-authzid"


def test_plain_without_tls_is_encryption_required() -> None:
    offered = offered_mechanisms(tls=False, channel_binding=False)
    steps = run_plain(f"\x00{USER}\x00{PASSWORD}".encode(), offered=offered, tls=False)
    assert isinstance(steps[0], Failure)
    assert steps[0].condition == "encryption-required"


# --- order of calls -------------------------------------------------------------------------


def malformed(step: SaslStep) -> bool:
    return isinstance(step, Failure) and step.condition == "malformed-request"


def test_abort_ends_the_exchange_with_aborted() -> None:
    server = make_server("SCRAM-SHA-256")
    assert isinstance(server.start(b"n,,n=juliet,r=abcdef"), NeedCredentials)
    assert server.abort() == Failure("aborted")
    assert server.done
    assert malformed(server.credentials(CREDS))
    assert malformed(server.abort())


def test_abort_before_start_is_aborted() -> None:
    assert make_server("PLAIN").abort() == Failure("aborted")


def test_calls_out_of_order_are_malformed_request() -> None:
    assert malformed(make_server("SCRAM-SHA-256").credentials(CREDS))
    assert malformed(make_server("SCRAM-SHA-256").respond(b"n,,n=juliet,r=abcdef"))
    assert malformed(make_server("SCRAM-SHA-256", cb_data=None, offered=[]).respond(b"x"))

    server = make_server("SCRAM-SHA-256")
    assert isinstance(server.start(b"n,,n=juliet,r=abcdef"), NeedCredentials)
    assert malformed(server.respond(b"c=biws,r=abcdef,p=AAAA"))  # credentials still pending
    assert server.done

    server = make_server("SCRAM-SHA-256")
    assert isinstance(server.start(None), Challenge)
    assert malformed(server.start(None))

    server = make_server("PLAIN")
    assert isinstance(server.start(f"\x00{USER}\x00{PASSWORD}".encode()), NeedCredentials)
    assert isinstance(server.credentials(CREDS), VerifyPassword)
    assert malformed(server.credentials(CREDS))  # the check is pending
    assert server.done

    server = make_server("PLAIN")
    assert isinstance(server.start(f"\x00{USER}\x00{PASSWORD}".encode()), NeedCredentials)
    assert isinstance(server.password_checked(check(server.credentials(CREDS))), Success)
    assert malformed(server.credentials(CREDS))
    assert malformed(server.password_checked(True))
    assert malformed(server.respond(b""))
    assert malformed(server.start(None))


def test_steps_after_failure_are_malformed_request() -> None:
    server, _nonce = scram_at_final()
    assert server.respond(b"c=biws,r=x,p=AAAA") == Failure("malformed-request", "wrong SCRAM nonce")
    assert malformed(server.respond(b"c=biws,r=x,p=AAAA"))
    assert malformed(server.credentials(CREDS))


def test_scram_credentials_twice_is_malformed_request() -> None:
    server, _nonce = scram_at_final()
    assert malformed(server.credentials(CREDS))
    assert server.done


# --- never raise ----------------------------------------------------------------------------

ANY_MECHANISM = st.sampled_from([*SCRAM_MECHANISMS, *PLUS_MECHANISMS, "PLAIN", "X"])
CLIENT_FIRST = st.builds(
    "{},{},{}={},r={}{}".format,
    st.sampled_from(["n", "y", "p=tls-server-end-point", "p=tls-unique", "p=", "x", ""]),
    st.sampled_from(["", "a=juliet", "a=", "a=x=41", "b=x", "a=\x00"]),
    st.sampled_from(["n", "m", "r", "", "n=x"]),
    st.text(max_size=10),
    st.text(max_size=10),
    st.sampled_from(["", ",x=1", ",i=1", ",", ",m=1", ",=", ",x"]),
).map(str.encode)
MESSAGES = st.one_of(st.binary(max_size=200), CLIENT_FIRST)


@settings(max_examples=300, deadline=None)
@given(
    mechanism=ANY_MECHANISM,
    first=st.one_of(st.none(), MESSAGES),
    then=st.lists(MESSAGES, max_size=3),
    known=st.booleans(),
)
def test_random_input_never_raises(
    mechanism: str, first: bytes | None, then: list[bytes], known: bool
) -> None:
    server = make_server(mechanism)
    steps = [server.start(first)]
    for data in then:
        if isinstance(steps[-1], NeedCredentials):
            steps.append(server.credentials(CREDS if known else None))
        if isinstance(steps[-1], VerifyPassword):
            steps.append(server.password_checked(check(steps[-1])))
        steps.append(server.respond(data))
    kinds = Challenge | NeedCredentials | VerifyPassword | Success | Failure
    assert all(isinstance(s, kinds) for s in steps)
    assert not any(isinstance(s, Success) for s in steps)


@settings(max_examples=300, deadline=None)
@given(
    mechanism=st.sampled_from(SCRAM_MECHANISMS + PLUS_MECHANISMS),
    known=st.booleans(),
    right_nonce=st.booleans(),
    cbind=st.one_of(st.binary(max_size=60), st.sampled_from([b"n,,", CB_DATA])),
    extensions=st.sampled_from(["", ",x=1", ",i=1", ",", ",x", ",r=abc"]),
    proof=st.binary(max_size=70),
    junk=st.sampled_from(["", ",", "=", "\x00", "é"]),
)
def test_random_client_final_never_raises_nor_succeeds(
    mechanism: str,
    known: bool,
    right_nonce: bool,
    cbind: bytes,
    extensions: str,
    proof: bytes,
    junk: str,
) -> None:
    server = make_server(mechanism)
    flag = "p=tls-server-end-point" if mechanism.endswith("-PLUS") else "n"
    assert isinstance(server.start(f"{flag},,n=juliet,r=abcdef".encode()), NeedCredentials)
    server_first = server.credentials(CREDS if known else None)
    assert isinstance(server_first, Challenge)
    match = SERVER_FIRST.fullmatch(server_first.data.decode())
    assert match is not None
    nonce = match[1] if right_nonce else "abcdef"
    c, p = base64.b64encode(cbind).decode(), base64.b64encode(proof).decode()
    step = server.respond(f"c={c},r={nonce}{extensions},p={p}{junk}".encode())
    assert isinstance(step, Failure)
    assert server.done
