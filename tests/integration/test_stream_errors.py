"""Stream errors of RFC 6120 §4.9 on the wire, STARTTLS (§5), direct TLS and the closing tag.

Every error test asserts the exact condition and that the stream is then closed (our closing
tag answered by the connection being dropped); errors found in or before the stream header
must come after a header of the server's own (§4.9.1.2).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_SERVER, NS_TLS
from roost.xml.parser import StreamEnd, StreamHeader
from roost.xml.serializer import STREAM_CLOSE
from tests.integration.harness import (
    DOMAIN,
    PASSWORD,
    ServerProcess,
    header,
    raw_client,
    running_server,
)
from tests.integration.rawhelpers import (
    Accounts,
    b64,
    error_condition,
    error_text,
    header_then_error,
    local,
    mechanisms,
    ping_server,
    read_stream_error,
    restart,
)


@pytest.fixture(scope="module")
def accounts(server: ServerProcess) -> Accounts:
    """Accounts of this module on the shared server."""
    return Accounts(server, "se")


XML_DECL = b"<?xml version='1.0'?>"
BARE_HEADER = header().removeprefix(XML_DECL)  # the stream header without the declaration


# -- the stream header (§4.7, §4.9.1.2) -------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("opening", "condition"),
    [
        (header("example.org"), "host-unknown"),
        (header("alice@localhost"), "host-unknown"),
        (header(""), "improper-addressing"),
        (header(stream_ns="http://example.org/streams"), "invalid-namespace"),
        (header(xmlns=NS_SERVER), "invalid-namespace"),
        (header(xmlns="urn:example:content"), "invalid-namespace"),
        (header(version="2.0"), "unsupported-version"),
        (header(version=None), "unsupported-version"),
        (header(extra=" x='" + "a" * 5000 + "'"), "policy-violation"),
    ],
    ids=[
        "host-unknown",
        "host-unknown-user-jid",
        "improper-addressing-no-to",
        "invalid-namespace-stream",
        "invalid-namespace-jabber-server",
        "invalid-namespace-other-content",
        "unsupported-version-2.0",
        "unsupported-version-missing",
        "policy-violation-huge-header",
    ],
)
async def test_bad_stream_header_gets_server_header_then_error(
    server: ServerProcess, opening: bytes, condition: str
) -> None:
    async with raw_client(server) as client:
        await client.send(opening)
        error = await header_then_error(client)
        assert error_condition(error) == condition


@pytest.mark.asyncio
async def test_stream_version_1_x_is_accepted(server: ServerProcess) -> None:
    async with raw_client(server) as client:
        await client.send(header(version="1.5"))
        reply = await client.next()
        assert isinstance(reply, StreamHeader)
        assert reply.attrs["version"] == "1.0"
        features = await client.element()
        assert features.find("starttls", NS_TLS) is not None


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("opening", "condition"),
    [
        (b"hello" + header(), "not-well-formed"),
        (XML_DECL + b"<!-- hi -->" + BARE_HEADER, "restricted-xml"),
        (b"<!DOCTYPE stream:stream [<!ENTITY x 'y'>]>" + BARE_HEADER, "restricted-xml"),
        (XML_DECL + b"<?pi data?>" + BARE_HEADER, "restricted-xml"),
        (b"<?xml version='1.1'?>" + BARE_HEADER, "not-well-formed"),
        (b"<message xmlns='jabber:client'/>", "invalid-namespace"),
    ],
    ids=["garbage", "comment", "doctype", "processing-instruction", "xml-1.1", "stanza-first"],
)
async def test_error_before_the_header_still_comes_after_a_server_header(
    server: ServerProcess, opening: bytes, condition: str
) -> None:
    async with raw_client(server) as client:
        await client.send(opening)
        error = await header_then_error(client)
        assert error_condition(error) == condition


# -- XML inside the stream (§4.9.3.13, §4.9.3.18, §11.1) ----------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("data", "condition"),
    [
        (b"<<>>", "not-well-formed"),
        (b"<message><body>hi</iq>", "not-well-formed"),
        (b"<message><body>\xff\xfe</body></message>", "not-well-formed"),
        (b"<message><body>\x01</body></message>", "not-well-formed"),
        (b"<!-- a comment -->", "restricted-xml"),
        (b"<message><!-- inside --></message>", "restricted-xml"),
        (b"<?target data?>", "restricted-xml"),
        (b"<message><body>&xxe;</body></message>", "restricted-xml"),
        (b"<!DOCTYPE x>", "not-well-formed"),
    ],
    ids=[
        "garbage",
        "mismatched-tags",
        "invalid-utf8",
        "forbidden-char",
        "comment",
        "comment-in-stanza",
        "processing-instruction",
        "entity-reference",
        "doctype-inside-stream",
    ],
)
async def test_bad_xml_in_the_stream_is_a_stream_error(
    server: ServerProcess, data: bytes, condition: str
) -> None:
    async with raw_client(server) as client:
        await client.open()
        await client.send(data)
        error = await read_stream_error(client)
        assert error_condition(error) == condition


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "stanza",
    [
        b"<message><body>" + b"a" * 11000 + b"</body></message>",
        b"<message><body>" + b"a" * 11000,  # incomplete: counted while it arrives
        b"<a>" * 9 + b"</a>" * 9,
        b"<message>" + b"<x/>" * 40 + b"</message>",
    ],
    ids=["too-big", "too-big-incomplete", "too-deep", "too-many-elements"],
)
async def test_stanza_over_a_preauth_limit_is_policy_violation(
    server: ServerProcess, stanza: bytes
) -> None:
    async with raw_client(server) as client:
        await client.open()
        await client.send(stanza)
        error = await read_stream_error(client)
        assert error_condition(error) == "policy-violation"


@pytest.mark.asyncio
async def test_element_at_the_preauth_depth_limit_is_not_refused(server: ServerProcess) -> None:
    async with raw_client(server) as client:
        await client.open()
        await client.send(b"<a>" * 8 + b"</a>" * 8)  # depth 8 is the limit, not over it
        error = await read_stream_error(client)
        assert error_condition(error) == "not-authorized"  # an unknown element, pre-auth


# -- before authentication (§6.4.1 / limits.md) ----------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("tls", [False, True], ids=["before-tls", "after-tls"])
@pytest.mark.parametrize("kind", ["message", "iq", "presence"])
async def test_stanza_before_authentication_is_not_authorized_and_never_routed(
    server: ServerProcess, accounts: Accounts, kind: str, tls: bool
) -> None:
    bob = accounts("bob")
    async with raw_client(server) as recipient, raw_client(server) as intruder:
        bob_full = await recipient.login(local(bob), resource="r")
        await intruder.open()
        if tls:
            await intruder.starttls()
        stanzas = {
            "message": f"<message to='{bob_full}' from='{bob_full}'><body>x</body></message>",
            "iq": f"<iq type='get' id='i1' to='{bob_full}'><ping xmlns='urn:xmpp:ping'/></iq>",
            "presence": f"<presence to='{bob}' type='subscribe'/>",
        }
        await intruder.send(stanzas[kind])
        error = await read_stream_error(intruder)
        assert error_condition(error) == "not-authorized"
        assert await ping_server(recipient) == []  # nothing was delivered before the pong


@pytest.mark.asyncio
async def test_before_binding_message_is_dropped_and_iq_gets_not_authorized(
    server: ServerProcess, accounts: Accounts
) -> None:
    alice, bob = accounts("alice"), accounts("bob")
    async with raw_client(server) as recipient, raw_client(server) as sender:
        bob_full = await recipient.login(local(bob), resource="r")
        await sender.open()
        await sender.starttls()
        answer = await sender.auth_plain(local(alice))
        assert answer.name == "success"
        await restart(sender)
        await sender.send(f"<message to='{bob_full}'><body>early</body></message>")
        await sender.send(
            f"<iq type='get' id='early' to='{bob_full}'><ping xmlns='urn:xmpp:ping'/></iq>"
        )
        reply = await sender.element()
        assert (reply.name, reply.get("id"), reply.get("type")) == ("iq", "early", "error")
        error = reply.find("error", NS_CLIENT)
        assert error is not None
        assert error.find("not-authorized") is not None
        assert await ping_server(recipient) == []
        # the stream is still usable: binding works afterwards
        assert (await sender.bind("late")).endswith("/late")


# -- after binding ----------------------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize(
    "element",
    [b"<foo/>", b"<query xmlns='urn:example:unknown'/>", b"<stream:features/>"],
    ids=["unknown-client-element", "other-namespace", "features"],
)
async def test_unknown_top_level_element_after_binding_is_unsupported_stanza_type(
    server: ServerProcess, accounts: Accounts, element: bytes
) -> None:
    user = accounts("alice")
    async with raw_client(server) as client:
        await client.login(local(user))
        await client.send(element)
        error = await read_stream_error(client)
        assert error_condition(error) == "unsupported-stanza-type"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "sender",
    ["{other}/r", "{other}", "{user}/another-resource", "localhost", "not a jid@@"],
    ids=["other-full", "other-bare", "own-other-resource", "server", "malformed"],
)
async def test_stanza_with_someone_elses_from_is_invalid_from(
    server: ServerProcess, accounts: Accounts, sender: str
) -> None:
    user, other = accounts("alice"), accounts("mallory")
    async with raw_client(server) as client:
        await client.login(local(user), resource="mine")
        frm = sender.format(user=user, other=other)
        await client.send(f"<message from='{frm}' to='{other}'><body>x</body></message>")
        error = await read_stream_error(client)
        assert error_condition(error) == "invalid-from"


@pytest.mark.asyncio
async def test_stanza_with_own_full_or_bare_from_is_accepted(
    server: ServerProcess, accounts: Accounts
) -> None:
    user = accounts("alice")
    async with raw_client(server) as client:
        full = await client.login(local(user), resource="mine")
        for frm in (full, user):
            await client.send(
                f"<iq type='get' id='own' from='{frm}' to='{DOMAIN}'>"
                "<ping xmlns='urn:xmpp:ping'/></iq>"
            )
            pong = await client.element()
            assert (pong.get("id"), pong.get("type")) == ("own", "result"), pong
            assert pong.get("to") == full


@pytest.mark.asyncio
async def test_second_login_with_same_resource_gets_old_stream_conflict(
    server: ServerProcess, accounts: Accounts
) -> None:
    user = accounts("alice")
    async with raw_client(server) as old, raw_client(server) as new:
        first = await old.login(local(user), resource="phone")
        second = await new.login(local(user), resource="phone")
        assert first == second == user + "/phone"
        error = await read_stream_error(old)
        assert error_condition(error) == "conflict"
        assert await ping_server(new) == []


# -- whitespace keepalive and the closing handshake (§4.4, §4.6.1) ----------------------------
@pytest.mark.asyncio
async def test_whitespace_between_stanzas_is_accepted(
    server: ServerProcess, accounts: Accounts
) -> None:
    user = accounts("alice")
    async with raw_client(server) as client:
        await client.send(header() + b"\n  \t\n")
        assert isinstance(await client.next(), StreamHeader)
        await client.element()  # features
        await client.send(b" \n ")
        await client.starttls()
        await client.send(b"\n")
        assert (await client.auth_plain(local(user))).name == "success"
        await restart(client)
        await client.bind("ws")
        for _ in range(3):
            await client.send(b" ")
            await asyncio.sleep(0.05)
        await client.send(b"\r\n\t ")
        assert await ping_server(client) == []
        await client.send(b"   ")
        assert await ping_server(client) == []


@pytest.mark.asyncio
async def test_client_closing_tag_is_answered_and_connection_closed(
    server: ServerProcess, accounts: Accounts
) -> None:
    user = accounts("alice")
    async with raw_client(server) as client:
        await client.login(local(user))
        await client.send(STREAM_CLOSE)
        assert isinstance(await client.next(), StreamEnd)
        with pytest.raises(EOFError):
            await client.next(timeout=1.5)


@pytest.mark.asyncio
async def test_server_drops_connection_when_its_closing_tag_is_not_answered(
    server: ServerProcess,
) -> None:
    async with raw_client(server) as client:
        await client.open()
        await client.send(b"<<>>")
        error = await client.element()
        assert error_condition(error) == "not-well-formed"
        assert isinstance(await client.next(), StreamEnd)
        with pytest.raises(EOFError):  # we never send ours; RFC 6120 §4.4 lets it wait a bit
            await client.next(timeout=4)


@pytest.mark.asyncio
async def test_closing_tag_before_authentication_is_answered(server: ServerProcess) -> None:
    async with raw_client(server) as client:
        await client.open()
        await client.send(STREAM_CLOSE)
        assert isinstance(await client.next(), StreamEnd)
        with pytest.raises(EOFError):
            await client.next(timeout=1.5)


# -- STARTTLS (§5) and direct TLS (XEP-0368) -------------------------------------------------
@pytest.mark.asyncio
async def test_features_before_tls_offer_only_required_starttls(server: ServerProcess) -> None:
    async with raw_client(server) as client:
        features = await client.open()
        children = list(features.elements())
        assert [(c.name, c.xmlns) for c in children] == [("starttls", NS_TLS)]
        assert [(c.name, c.xmlns) for c in children[0].elements()] == [("required", NS_TLS)]
        after = await client.starttls()
        assert after.find("starttls", NS_TLS) is None
        assert {"PLAIN", "SCRAM-SHA-256"} <= set(mechanisms(after))


@pytest.mark.asyncio
async def test_starttls_twice_is_policy_violation(server: ServerProcess) -> None:
    async with raw_client(server) as client:
        await client.open()
        await client.starttls()
        await client.send(Element("starttls", NS_TLS))
        error = await read_stream_error(client)
        assert error_condition(error) == "policy-violation"


@pytest.mark.asyncio
async def test_direct_tls_port_negotiates_alpn_and_logs_in(
    server: ServerProcess, accounts: Accounts
) -> None:
    user = accounts("alice")
    async with raw_client(server, direct_tls=True) as client:
        assert client.writer is not None
        ssl_object = client.writer.get_extra_info("ssl_object")
        assert ssl_object.selected_alpn_protocol() == "xmpp-client"
        features = await client.open()
        assert features.find("starttls", NS_TLS) is None
        offered = mechanisms(features)
        assert {"PLAIN", "SCRAM-SHA-256-PLUS"} <= set(offered)
        assert (await client.auth_plain(local(user))).name == "success"
        await restart(client)
        assert await client.bind("direct") == user + "/direct"
        assert await ping_server(client) == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "after",
    [
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>",
        b"<message to='someone@localhost'><body>injected</body></message>",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # not XML at all
        b"<unclosed",
    ],
    ids=["sasl-auth", "stanza", "binary", "partial-tag"],
)
async def test_bytes_after_starttls_in_the_same_packet_are_discarded(
    server: ServerProcess, accounts: Accounts, after: bytes
) -> None:
    user = accounts("alice")
    plain = b64(f"\0{local(user)}\0{PASSWORD}").encode()
    async with raw_client(server) as client:
        await client.open()
        await client.send(
            f"<starttls xmlns='{NS_TLS}'/>".encode() + after.replace(b"{plain}", plain)
        )
        proceed = await client.element()
        assert (proceed.xmlns, proceed.name) == (NS_TLS, "proceed"), proceed
        assert client.writer is not None
        await client.writer.start_tls(server.client_context(), server_hostname=DOMAIN)
        client.parser.reset()
        features = await client.open()
        assert "PLAIN" in mechanisms(features)  # not authenticated by the injected <auth/>
        answer = await client.auth_plain(local(user))
        assert answer.name == "success", answer


# -- the server's own reasons (§4.9.3.4, §4.9.3.20) ----------------------------------------
@pytest.mark.asyncio
async def test_unauthenticated_stream_times_out_with_connection_timeout(tmp_path: Path) -> None:
    with running_server(tmp_path / "roost", limits={"preauth_timeout": 1}) as srv:
        user = srv.add_user("alice")
        loop = asyncio.get_running_loop()
        connecting = loop.time()
        async with (
            raw_client(srv) as idle,
            raw_client(srv) as silent,
            raw_client(srv) as stalled,
            raw_client(srv) as active,
        ):
            await active.login(local(user))
            await stalled.open()
            await stalled.send(Element("starttls", NS_TLS))
            assert (await stalled.element()).name == "proceed"
            await idle.open()
            error = await read_stream_error(idle, timeout=4)
            assert error_condition(error) == "connection-timeout"
            assert 1 <= loop.time() - connecting < 3
            error = await header_then_error(silent, timeout=4)  # never sent a header
            assert error_condition(error) == "connection-timeout"
            # after <proceed/> only TLS may follow: the connection is dropped, nothing is
            # written in the clear (RFC 6120 §5.4.3.3)
            assert stalled.reader is not None
            assert await asyncio.wait_for(stalled.reader.read(), 3) == b""
            assert await ping_server(active) == []  # the pre-auth timeout spares logged-in ones


@pytest.mark.asyncio
async def test_sigterm_sends_system_shutdown_and_exits_zero(tmp_path: Path) -> None:
    with running_server(tmp_path / "roost") as srv:
        user = srv.add_user("alice")
        async with raw_client(srv) as bound, raw_client(srv) as negotiating:
            await bound.login(local(user))
            await negotiating.open()
            assert srv.proc is not None
            stopping = asyncio.create_task(asyncio.to_thread(srv.stop, signal.SIGTERM))
            for client in (bound, negotiating):
                error = await read_stream_error(client)
                assert error_condition(error) == "system-shutdown"
                assert error_text(error)
            assert await stopping == 0
        assert "Traceback" not in srv.log_text()
