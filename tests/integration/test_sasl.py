"""SASL on the wire (RFC 6120 §6): every failure condition of §6.5 roost produces, the
per-stream failure limit, PLAIN and SCRAM(-PLUS) logins, and what follows success (§6.4.6,
§7, RFC 3921 §3).

SCRAM peers are scramp's ``ScramClient`` (raw sockets) and slixmpp; the channel binding
(RFC 5929 ``tls-server-end-point``) is computed from the certificate the client received.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterator

import pytest
from scramp import ScramClient
from slixmpp import JID

from roost.xml.element import Element
from roost.xml.ns import NS_BIND, NS_SASL, NS_SASL_CB, NS_SESSION, NS_TLS
from roost.xml.serializer import serialize
from tests.integration.harness import (
    DOMAIN,
    PASSWORD,
    RawClient,
    ServerProcess,
    disconnect,
    raw_client,
    running_server,
    slix_client,
)
from tests.integration.rawhelpers import (
    Accounts,
    auth,
    end_point_binding,
    error_condition,
    failure_condition,
    local,
    mechanisms,
    ping_server,
    read_stream_error,
    response,
    restart,
    scram_login,
)

SCRAM = ("SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512")
PER_STREAM_LIMIT = 5  # [limits].auth_failures_per_stream, default


@pytest.fixture(scope="module")
def accounts(server: ServerProcess) -> Accounts:
    """Accounts of this module on the shared server."""
    return Accounts(server, "sasl")


@contextlib.asynccontextmanager
async def secured(server: ServerProcess) -> AsyncIterator[tuple[RawClient, Element]]:
    """A client past STARTTLS, with the features offered then."""
    async with raw_client(server) as client:
        await client.open()
        yield client, await client.starttls()


async def plain(client: RawClient, authzid: str, authcid: str, password: str) -> Element:
    """One PLAIN attempt with an explicit authzid; the server's answer."""
    await client.send(auth("PLAIN", f"{authzid}\0{authcid}\0{password}"))
    return await client.element()


def cb_data(client: RawClient) -> bytes:
    """The tls-server-end-point data of the certificate this client received."""
    assert client.peer_cert is not None
    return end_point_binding(client.peer_cert)


# -- not-authorized (§6.5.10) ----------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("mechanism", ["PLAIN", *SCRAM])
async def test_wrong_password_and_unknown_user_fail_identically_with_not_authorized(
    server: ServerProcess, accounts: Accounts, mechanism: str
) -> None:
    user = accounts("alice")
    answers = []
    for name, password in ((local(user), "wrong"), ("nobody-here", PASSWORD)):
        async with secured(server) as (client, _):
            if mechanism == "PLAIN":
                answer = await client.auth_plain(name, password)
            else:
                answer = await scram_login(client, mechanism, name, password)
            assert failure_condition(answer) == "not-authorized"
            answers.append(serialize(answer))
    assert answers[0] == answers[1]


@pytest.mark.asyncio
@pytest.mark.parametrize("mechanism", SCRAM)
async def test_scram_server_first_does_not_reveal_unknown_users(
    server: ServerProcess, accounts: Accounts, mechanism: str
) -> None:
    user = accounts("alice")
    seen: dict[str, list[dict[str, str]]] = {}
    for name in (local(user), "nobody-here", "nobody-here"):
        async with secured(server) as (client, _):
            scram = ScramClient([mechanism], name, PASSWORD)
            await client.send(auth(mechanism, scram.get_client_first()))
            challenge = await client.element()
            assert challenge.name == "challenge", challenge
            text = base64.b64decode(challenge.text).decode()
            fields = dict(item.split("=", 1) for item in text.split(","))
            seen.setdefault(name, []).append(fields)
    known, (unknown, again) = seen[local(user)][0], seen["nobody-here"]
    assert unknown["i"] == known["i"]
    assert len(base64.b64decode(unknown["s"])) == len(base64.b64decode(known["s"]))
    assert unknown["s"] == again["s"]  # a fresh random salt per attempt would tell


# -- invalid-mechanism (§6.5.5), encryption-required (§6.5.3) ----------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize(
    "mechanism", ["DIGEST-MD5", "X-UNKNOWN", "EXTERNAL", "ANONYMOUS", "scram-sha-256", ""]
)
async def test_unknown_or_not_offered_mechanism_is_invalid_mechanism(
    server: ServerProcess, mechanism: str
) -> None:
    async with secured(server) as (client, features):
        assert mechanism not in mechanisms(features)
        await client.send(auth(mechanism, b"\0user\0password"))
        assert failure_condition(await client.element()) == "invalid-mechanism"
        await client.send(auth(mechanism))
        assert failure_condition(await client.element()) == "invalid-mechanism"


@pytest.mark.asyncio
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"])
async def test_auth_before_starttls_is_encryption_required(
    server: ServerProcess, accounts: Accounts, mechanism: str
) -> None:
    user = accounts("alice")
    async with raw_client(server) as client:
        await client.open()
        await client.send(auth(mechanism, f"\0{local(user)}\0{PASSWORD}"))
        assert failure_condition(await client.element()) == "encryption-required"
        # the stream goes on: TLS, then the same credentials work
        await client.starttls()
        assert (await client.auth_plain(local(user))).name == "success"


@pytest.fixture(scope="module")
def tls_optional(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with ``[tls].require_c2s = false``."""
    with running_server(tmp_path_factory.mktemp("tls-optional"), require_tls=False) as srv:
        srv.add_user("alice")
        yield srv


@pytest.mark.asyncio
async def test_without_required_tls_plain_is_not_offered_and_refused_before_tls(
    tls_optional: ServerProcess,
) -> None:
    async with raw_client(tls_optional) as client:
        features = await client.open()
        starttls = features.find("starttls", NS_TLS)
        assert starttls is not None
        assert starttls.find("required", NS_TLS) is None
        offered = mechanisms(features)
        assert "SCRAM-SHA-256" in offered
        assert [m for m in offered if m == "PLAIN" or m.endswith("-PLUS")] == []
        answer = await client.auth_plain("alice")
        assert failure_condition(answer) == "encryption-required"
        after = await client.starttls()
        assert "PLAIN" in mechanisms(after)
        assert (await client.auth_plain("alice")).name == "success"


@pytest.mark.asyncio
async def test_without_required_tls_scram_logs_in_before_tls(tls_optional: ServerProcess) -> None:
    async with raw_client(tls_optional) as client:
        await client.open()
        answer = await scram_login(client, "SCRAM-SHA-256", "alice")
        assert answer.name == "success", answer
        await restart(client)
        assert await client.bind("plain-tcp") == "alice@localhost/plain-tcp"
        assert await ping_server(client) == []


@pytest.mark.asyncio
async def test_y_flag_is_accepted_when_no_plus_mechanism_was_offered(
    tls_optional: ServerProcess,
) -> None:
    async with raw_client(tls_optional) as client:
        await client.open()
        binding = ("tls-server-end-point", b"\x01" * 32)  # makes scramp say "y"
        answer = await scram_login(client, "SCRAM-SHA-256", "alice", channel_binding=binding)
        assert answer.name == "success", answer


# -- malformed-request (§6.5.8), incorrect-encoding (§6.5.2) -------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize(
    "message",
    [
        b"alice\0secret",
        b"\0alice\0secret\0extra",
        b"\0\0secret",
        b"\0alice\0",
        b"alice",
        b"\0\xff\xfe\0secret",
        b"",
    ],
    ids=["one-nul", "three-nul", "empty-authcid", "empty-password", "no-nul", "bad-utf8", "empty"],
)
async def test_plain_with_bad_framing_is_malformed_request(
    server: ServerProcess, message: bytes
) -> None:
    async with secured(server) as (client, _):
        await client.send(auth("PLAIN", message))
        assert failure_condition(await client.element()) == "malformed-request"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "message",
    ["garbage", "n,,n=alice", "x,,n=alice,r=abc", "n,,m=ext,n=alice,r=abc", "p=tls-unique,,"],
    ids=["garbage", "no-nonce", "bad-flag", "mandatory-extension", "short"],
)
async def test_bad_scram_client_first_is_malformed_request(
    server: ServerProcess, message: str
) -> None:
    async with secured(server) as (client, _):
        await client.send(auth("SCRAM-SHA-256", message))
        assert failure_condition(await client.element()) == "malformed-request"


@pytest.mark.asyncio
async def test_second_auth_during_an_exchange_is_malformed_request(
    server: ServerProcess, accounts: Accounts
) -> None:
    user = accounts("alice")
    async with secured(server) as (client, _):
        scram = ScramClient(["SCRAM-SHA-256"], local(user), PASSWORD)
        await client.send(auth("SCRAM-SHA-256", scram.get_client_first()))
        assert (await client.element()).name == "challenge"
        await client.send(auth("PLAIN", f"\0{local(user)}\0{PASSWORD}"))
        assert failure_condition(await client.element()) == "malformed-request"
        # the exchange is over; a new one starts from scratch
        assert (await client.auth_plain(local(user))).name == "success"


@pytest.mark.asyncio
async def test_response_without_an_exchange_is_malformed_request(server: ServerProcess) -> None:
    async with secured(server) as (client, _):
        await client.send(response(b"n,,n=alice,r=abc"))
        assert failure_condition(await client.element()) == "malformed-request"


@pytest.mark.asyncio
@pytest.mark.parametrize("payload", ["!!!!", "AGFsaWNl?", "AGFsaWNl=AA", "é"])
async def test_invalid_base64_is_incorrect_encoding(server: ServerProcess, payload: str) -> None:
    async with secured(server) as (client, _):
        await client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
        assert failure_condition(await client.element()) == "incorrect-encoding"


@pytest.mark.asyncio
async def test_invalid_base64_in_a_response_is_incorrect_encoding(
    server: ServerProcess, accounts: Accounts
) -> None:
    async with secured(server) as (client, _):
        await client.send(auth("SCRAM-SHA-256"))  # no initial response: empty challenge
        challenge = await client.element()
        assert challenge.name == "challenge", challenge
        await client.send(f"<response xmlns='{NS_SASL}'>%%%</response>")
        assert failure_condition(await client.element()) == "incorrect-encoding"


# -- aborted (§6.5.1), invalid-authzid (§6.5.6) ---------------------------------------------
@pytest.mark.asyncio
async def test_abort_mid_scram_is_aborted_and_does_not_count_as_a_failure(
    server: ServerProcess, accounts: Accounts
) -> None:
    user = accounts("alice")
    async with secured(server) as (client, _):
        for _ in range(PER_STREAM_LIMIT + 1):
            scram = ScramClient(["SCRAM-SHA-256"], local(user), PASSWORD)
            await client.send(auth("SCRAM-SHA-256", scram.get_client_first()))
            assert (await client.element()).name == "challenge"
            await client.send(f"<abort xmlns='{NS_SASL}'/>")
            assert failure_condition(await client.element()) == "aborted"
        answer = await scram_login(client, "SCRAM-SHA-256", local(user))
        assert answer.name == "success", answer


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "authzid", ["{other}", "{other}/res", "localhost", "{user}/res", "@@bad"], ids=str
)
async def test_plain_authzid_of_someone_else_is_invalid_authzid(
    server: ServerProcess, accounts: Accounts, authzid: str
) -> None:
    user, other = accounts("alice"), accounts("bob")
    async with secured(server) as (client, _):
        answer = await plain(client, authzid.format(user=user, other=other), local(user), PASSWORD)
        assert failure_condition(answer) == "invalid-authzid"


@pytest.mark.asyncio
async def test_plain_authzid_equal_to_own_jid_is_accepted(
    server: ServerProcess, accounts: Accounts
) -> None:
    user = accounts("alice")
    async with secured(server) as (client, _):
        answer = await plain(client, user, local(user), PASSWORD)
        assert answer.name == "success", answer


# -- the per-stream limit ---------------------------------------------------------------------
@pytest.mark.asyncio
async def test_failures_up_to_the_stream_limit_close_it_with_not_authorized(
    server: ServerProcess, accounts: Accounts
) -> None:
    user = accounts("alice")
    attempts = [
        auth("PLAIN", f"\0{local(user)}\0wrong"),
        auth("X-UNKNOWN"),
        auth("PLAIN", "no-nul"),
        f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>!!!</auth>".encode(),
        auth("PLAIN", f"\0{local(user)}\0wrong"),
    ]
    assert len(attempts) == PER_STREAM_LIMIT
    async with secured(server) as (client, _):
        for attempt in attempts:
            await client.send(attempt)
            failure = await client.element()
            assert failure_condition(failure) != "aborted"
        error = await read_stream_error(client)
        assert error_condition(error) == "not-authorized"


@pytest.mark.asyncio
async def test_correct_attempt_after_failures_below_the_limit_succeeds(
    server: ServerProcess, accounts: Accounts
) -> None:
    user = accounts("alice")
    async with secured(server) as (client, _):
        for _ in range(PER_STREAM_LIMIT - 1):
            answer = await client.auth_plain(local(user), "wrong")
            assert failure_condition(answer) == "not-authorized"
        assert (await client.auth_plain(local(user))).name == "success"
        await restart(client)
        assert await client.bind("late") == user + "/late"


# -- success paths ------------------------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("mechanism", [*SCRAM, "PLAIN"])
async def test_slixmpp_logs_in_with_mechanism(
    server: ServerProcess, accounts: Accounts, mechanism: str
) -> None:
    user = accounts("alice")
    client = await slix_client(server, user + "/slix", mechanism=mechanism, presence=False)
    try:
        used = client.plugin["feature_mechanisms"].mech
        assert used is not None
        assert used.name == mechanism
        assert str(client.boundjid) == user + "/slix"
        pong = await client.plugin["xep_0199"].ping(jid=JID(DOMAIN), timeout=5)
        assert pong >= 0
    finally:
        await disconnect(client)


@pytest.mark.asyncio
@pytest.mark.parametrize("mechanism", [m + "-PLUS" for m in SCRAM])
async def test_scram_plus_with_server_end_point_binding_logs_in(
    server: ServerProcess, accounts: Accounts, mechanism: str
) -> None:
    user = accounts("alice")
    async with secured(server) as (client, features):
        assert mechanism in mechanisms(features)
        binding = features.find("sasl-channel-binding", "urn:xmpp:sasl-cb:0")
        assert binding is not None
        assert [b.get("type") for b in binding.elements()] == ["tls-server-end-point"]
        answer = await scram_login(
            client,
            mechanism,
            local(user),
            channel_binding=("tls-server-end-point", cb_data(client)),
        )
        assert answer.name == "success", answer
        await restart(client)
        assert await client.bind("plus") == user + "/plus"


@pytest.mark.asyncio
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-512"])
async def test_server_first_downgrade_protection_matches_the_advertised_features(
    server: ServerProcess, accounts: Accounts, mechanism: str
) -> None:
    """XEP-0474 (0.5.0) §5.2: the client recomputes "h" from <mechanisms/> and XEP-0440."""
    user = accounts("alice")
    async with secured(server) as (client, features):
        advertised = [name.encode() for name in mechanisms(features)]
        assert mechanism.encode() in advertised
        text = b"\x1e".join(sorted(advertised))
        binding_list = features.find("sasl-channel-binding", NS_SASL_CB)
        if binding_list is not None:
            types = [str(b.get("type")).encode() for b in binding_list.elements()]
            text += b"\x1f" + b"\x1e".join(sorted(types))
        hash_name = mechanism.removeprefix("SCRAM-").removesuffix("-PLUS").replace("-", "")
        expected = base64.b64encode(hashlib.new(hash_name, text).digest()).decode()
        binding = ("tls-server-end-point", cb_data(client)) if "PLUS" in mechanism else None
        scram = ScramClient([mechanism], local(user), PASSWORD, channel_binding=binding)
        await client.send(auth(mechanism, scram.get_client_first()))
        challenge = await client.element()
        assert challenge.name == "challenge", challenge
        server_first = base64.b64decode(challenge.text).decode()
        attributes = dict(item.split("=", 1) for item in server_first.split(","))
        assert list(attributes) == ["r", "s", "i", "h"]
        assert attributes["h"] == expected
        scram.set_server_first(server_first)
        await client.send(response(scram.get_client_final()))
        answer = await client.element()
        assert answer.name == "success", answer
        scram.set_server_final(base64.b64decode(answer.text).decode())


@pytest.mark.asyncio
async def test_scram_plus_over_direct_tls_logs_in(
    server: ServerProcess, accounts: Accounts
) -> None:
    user = accounts("alice")
    async with raw_client(server, direct_tls=True) as client:
        features = await client.open()
        assert "SCRAM-SHA-256-PLUS" in mechanisms(features)
        binding = ("tls-server-end-point", cb_data(client))
        answer = await scram_login(
            client, "SCRAM-SHA-256-PLUS", local(user), channel_binding=binding
        )
        assert answer.name == "success", answer


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "binding",
    [("tls-server-end-point", b"\x00" * 32), ("tls-unique", b"\x00" * 12)],
    ids=["wrong-data", "other-type"],
)
async def test_scram_plus_with_wrong_binding_is_not_authorized(
    server: ServerProcess, accounts: Accounts, binding: tuple[str, bytes]
) -> None:
    user = accounts("alice")
    async with secured(server) as (client, _):
        answer = await scram_login(
            client, "SCRAM-SHA-256-PLUS", local(user), channel_binding=binding
        )
        assert failure_condition(answer) == "not-authorized"


@pytest.mark.asyncio
@pytest.mark.parametrize("mechanism", SCRAM)
async def test_y_flag_when_plus_was_offered_is_not_authorized(
    server: ServerProcess, accounts: Accounts, mechanism: str
) -> None:
    user = accounts("alice")
    async with secured(server) as (client, features):
        assert mechanism + "-PLUS" in mechanisms(features)
        binding = ("tls-server-end-point", cb_data(client))  # with a non-PLUS mech: "y"
        answer = await scram_login(client, mechanism, local(user), channel_binding=binding)
        assert failure_condition(answer) == "not-authorized"


@pytest.mark.asyncio
async def test_plain_without_initial_response_gets_empty_challenge_and_logs_in(
    server: ServerProcess, accounts: Accounts
) -> None:
    user = accounts("alice")
    async with secured(server) as (client, _):
        await client.send(auth("PLAIN"))
        challenge = await client.element()
        assert challenge.name == "challenge", challenge
        assert challenge.text in ("", "=")
        await client.send(response(f"\0{local(user)}\0{PASSWORD}"))
        assert (await client.element()).name == "success"


# -- after success (§6.4.6, §7, RFC 3921 §3) ----------------------------------------------
@pytest.mark.asyncio
async def test_after_success_stream_restarts_and_binds_chosen_resource(
    server: ServerProcess, accounts: Accounts
) -> None:
    user = accounts("alice")
    async with secured(server) as (client, _):
        assert (await client.auth_plain(local(user))).name == "success"
        features = await restart(client)
        assert features.find("bind", NS_BIND) is not None
        assert mechanisms(features) == []
        session = features.find("session", NS_SESSION)
        assert session is not None
        assert session.find("optional") is not None
        assert await client.bind("my-resource") == user + "/my-resource"
        await client.send(f"<iq type='set' id='sess'><session xmlns='{NS_SESSION}'/></iq>")
        result = await client.element()
        assert (result.get("id"), result.get("type")) == ("sess", "result"), result
        assert list(result.elements()) == []


@pytest.mark.asyncio
async def test_bind_without_resource_gets_a_generated_one(
    server: ServerProcess, accounts: Accounts
) -> None:
    user = accounts("alice")
    async with raw_client(server) as first, raw_client(server) as second:
        one = await first.login(local(user), resource=None)
        two = await second.login(local(user), resource=None)
        for full in (one, two):
            bare, _, resource = full.partition("/")
            assert bare == user
            assert resource
        assert one != two
        assert await ping_server(first) == []
        assert await ping_server(second) == []


@pytest.mark.asyncio
async def test_sasl_after_success_is_refused(server: ServerProcess, accounts: Accounts) -> None:
    user = accounts("alice")
    async with secured(server) as (client, _):
        assert (await client.auth_plain(local(user))).name == "success"
        await restart(client)
        await client.send(auth("PLAIN", f"\0{local(user)}\0{PASSWORD}"))
        error = await read_stream_error(client)
        assert error_condition(error) == "policy-violation"
