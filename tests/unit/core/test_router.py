"""The router on an in-process server (docs/routing.md): addressing, the user host's
RFC 6121 §8.5 defaults, RFC 6120 §8 iq rules, service hosts, components and the remote
fallback. The ``bare`` server has no module, so every answer here is the core's own."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from roost.core.routes import UserHost
from roost.core.stanza import BARE, HOST, IqRequest, Routed
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_PING
from tests.unit.harness import Roost, condition

PING = f"<ping xmlns='{NS_PING}'/>"


@pytest.mark.asyncio
async def test_a_message_to_a_full_jid_reaches_that_resource_only(bare: Roost) -> None:
    phone, laptop = await bare.bound("alice", "phone"), await bare.bound("alice", "laptop")
    bob = await bare.bound("bob")
    await bob.send("<message to='alice@localhost/laptop' id='m1'><body>hi</body></message>")
    got = await laptop.expect("message", id="m1", from_="bob@localhost/r")
    assert got.find_text("body") == "hi"
    await phone.nothing()
    await bob.nothing()


@pytest.mark.asyncio
async def test_a_message_to_a_bare_jid_nobody_handles_is_service_unavailable(
    bare: Roost,
) -> None:
    bob = await bare.bound("bob")
    await bare.add_user("alice")
    await bob.send("<message to='alice@localhost' id='m1'><body>hi</body></message>")
    reply = await bob.expect("message", type="error", id="m1", from_="alice@localhost")
    assert condition(reply) == "service-unavailable"


@pytest.mark.asyncio
async def test_a_message_to_an_unbound_resource_is_handled_as_to_the_bare_jid(
    bare: Roost,
) -> None:
    seen: list[tuple[str, str]] = []

    def on_bare(routed: Routed) -> bool:
        seen.append((str(routed.to), routed.addressing))
        return True

    bare.api().on("message", BARE, on_bare)
    bob = await bare.bound("bob")
    await bob.send("<message to='alice@localhost/gone' id='m1'/>")
    assert seen == [("alice@localhost/gone", "full")]  # §8.5.3.2: the bare handlers decide
    await bob.nothing()


@pytest.mark.asyncio
async def test_an_error_message_nobody_handles_gets_no_error_back(bare: Roost) -> None:
    bob = await bare.bound("bob")
    await bob.send("<message to='alice@localhost' type='error' id='e1'/>")
    await bob.nothing()  # RFC 6120 §8.3.1: never an error in reply to an error


@pytest.mark.asyncio
async def test_an_iq_to_a_bound_full_jid_is_delivered_and_its_result_routed_back(
    bare: Roost,
) -> None:
    alice, bob = await bare.bound("alice"), await bare.bound("bob")
    await bob.send(f"<iq type='get' id='q1' to='alice@localhost/r'>{PING}</iq>")
    request = await alice.expect("iq", type="get", id="q1", from_="bob@localhost/r")
    assert request.find("ping", NS_PING) is not None
    await alice.send("<iq type='result' id='q1' to='bob@localhost/r'/>")
    await bob.expect("iq", type="result", id="q1", from_="alice@localhost/r")


@pytest.mark.asyncio
async def test_an_iq_to_an_absent_resource_is_service_unavailable(bare: Roost) -> None:
    await bare.bound("alice", "here")
    bob = await bare.bound("bob")
    await bob.send(f"<iq type='get' id='q1' to='alice@localhost/gone'>{PING}</iq>")
    reply = await bob.expect("iq", type="error", id="q1", from_="alice@localhost/gone")
    assert condition(reply) == "service-unavailable"


@pytest.mark.asyncio
async def test_an_iq_result_to_an_absent_resource_is_dropped(bare: Roost) -> None:
    alice = await bare.bound("alice", "here")
    bob = await bare.bound("bob")
    await bob.send("<iq type='result' id='q1' to='alice@localhost/gone'/>")
    await bob.nothing()
    await alice.nothing()


@pytest.mark.asyncio
async def test_presence_to_an_unknown_address_is_silently_dropped(bare: Roost) -> None:
    bob = await bare.bound("bob")
    await bob.send("<presence to='nobody@localhost'/>")
    await bob.send("<presence to='nobody@localhost/x' type='subscribe'/>")
    await bob.nothing()


@pytest.mark.asyncio
async def test_presence_to_a_bound_full_jid_is_delivered(bare: Roost) -> None:
    alice, bob = await bare.bound("alice"), await bare.bound("bob")
    await bob.send("<presence to='alice@localhost/r' type='probe'/>")
    await alice.expect("presence", type="probe", from_="bob@localhost/r")


@pytest.mark.parametrize(
    "iq",
    [
        f"<iq type='get' to='localhost'>{PING}</iq>",  # no id
        f"<iq type='get' id='q1' to='localhost'>{PING}{PING}</iq>",  # two payloads
        "<iq type='set' id='q1' to='localhost'/>",  # none
        f"<iq type='bogus' id='q1' to='localhost'>{PING}</iq>",
    ],
)
@pytest.mark.asyncio
async def test_a_malformed_iq_is_bad_request(bare: Roost, iq: str) -> None:
    bob = await bare.bound("bob")
    await bob.send(iq)
    assert condition(await bob.expect("iq", type="error")) == "bad-request"


@pytest.mark.asyncio
async def test_an_iq_to_the_server_nobody_handles_is_service_unavailable(bare: Roost) -> None:
    bob = await bare.bound("bob")
    await bob.send(f"<iq type='get' id='q1' to='localhost'>{PING}</iq>")
    reply = await bob.expect("iq", type="error", id="q1", from_="localhost")
    assert condition(reply) == "service-unavailable"


@pytest.mark.asyncio
async def test_a_malformed_to_is_jid_malformed(bare: Roost) -> None:
    bob = await bare.bound("bob")
    await bob.send("<message to='a@b@localhost' id='m1'/>")
    assert condition(await bob.expect("message", type="error", id="m1")) == "jid-malformed"


@pytest.mark.asyncio
async def test_addressing_classes_of_iq_handlers(bare: Roost) -> None:
    seen: list[tuple[str, str]] = []

    def record(request: IqRequest) -> Element:
        seen.append((request.stanza.attrs.get("to", "-"), str(request.to)))
        return Element("answer", "urn:test")

    api = bare.api()
    api.on_iq("get", HOST, NS_PING, "ping", record)
    api.on_iq("get", BARE, "urn:test", "q", record)  # also answers SELF when none is there
    bob = await bare.bound("bob")
    await bob.send(f"<iq type='get' id='h' to='localhost/anything'>{PING}</iq>")
    await bob.send("<iq type='get' id='s'><q xmlns='urn:test'/></iq>")
    await bob.send("<iq type='get' id='b' to='alice@localhost'><q xmlns='urn:test'/></iq>")
    for iq_id in ("h", "s", "b"):
        reply = await bob.expect("iq", type="result", id=iq_id)
        assert reply.find("answer", "urn:test") is not None
    assert seen == [
        ("localhost/anything", "localhost/anything"),
        ("-", "bob@localhost"),
        ("alice@localhost", "alice@localhost"),
    ]


# --- other routes: services, components, remote domains -------------------------------------


@pytest.mark.asyncio
async def test_a_service_host_dispatches_to_its_handlers_and_has_no_accounts(
    bare: Roost,
) -> None:
    service = bare.core.add_service_host("rooms.localhost")
    rooms: list[str] = []

    def on_room(routed: Routed) -> bool:
        rooms.append(str(routed.to))
        return True

    bare.api("rooms", "rooms.localhost").on("message", BARE, on_room)
    bob = await bare.bound("bob")
    await bob.send("<message to='lobby@rooms.localhost' id='m1'/>")
    assert rooms == ["lobby@rooms.localhost"]
    await bob.send("<presence to='lobby@rooms.localhost/bob'/>")  # dropped
    await bob.send("<message to='lobby@rooms.localhost/x' id='m2'/>")
    assert condition(await bob.expect("message", id="m2")) == "service-unavailable"
    await bob.send(f"<iq type='get' id='q1' to='lobby@rooms.localhost'>{PING}</iq>")
    assert condition(await bob.expect("iq", id="q1")) == "service-unavailable"
    await bob.nothing()
    assert not isinstance(service, UserHost)
    assert bare.core.routes.login_domains == frozenset({"localhost"})


@dataclass
class Component:
    """A component's end of the route table that keeps what it is given (XEP-0114)."""

    domain: str
    got: list[Element] = field(default_factory=list)

    def deliver(self, stanza: Element) -> None:
        self.got.append(stanza)


@pytest.mark.asyncio
async def test_a_component_takes_its_domain_and_subdomains(bare: Roost) -> None:
    gateway = Component("gw.localhost")
    bare.core.routes.add_component(gateway)
    bob = await bare.bound("bob")
    await bob.send("<message to='user@gw.localhost' id='m1'/>")
    await bob.send("<message to='deep.gw.localhost' id='m2'/>")
    assert [(m.get("id"), m.get("from")) for m in gateway.got] == [
        ("m1", "bob@localhost/r"),
        ("m2", "bob@localhost/r"),
    ]
    bare.core.routes.remove_component(gateway)
    await bob.send("<message to='user@gw.localhost' id='m3'/>")
    assert condition(await bob.expect("message", id="m3")) == "remote-server-not-found"
    assert len(gateway.got) == 2
    with pytest.raises(ValueError, match="routed already"):
        bare.core.routes.add_component(Component("localhost"))


@pytest.mark.parametrize(
    "sent",
    [
        "<message to='juliet@remote.example' id='x1'><body>hi</body></message>",
        f"<iq type='get' id='x1' to='remote.example'>{PING}</iq>",
    ],
)
@pytest.mark.asyncio
async def test_a_remote_domain_without_federation_is_remote_server_not_found(
    bare: Roost, sent: str
) -> None:
    bob = await bare.bound("bob")
    element = await bob.send(sent)
    reply = await bob.expect(element.name, type="error", id="x1", to="bob@localhost/r")
    assert condition(reply) == "remote-server-not-found"
    assert reply.get("from") == element.get("to")


@pytest.mark.asyncio
async def test_an_error_to_a_remote_domain_is_not_bounced(bare: Roost) -> None:
    bob = await bare.bound("bob")
    await bob.send("<message to='juliet@remote.example' type='error' id='x1'/>")
    await bob.send("<iq to='remote.example' type='result' id='x2'/>")
    await bob.nothing()


@pytest.mark.asyncio
async def test_a_server_originated_stanza_without_to_or_from_is_dropped(bare: Roost) -> None:
    bob = await bare.bound("bob")
    router = bare.core.router
    assert router.route(Element("message", NS_CLIENT, {"from": "localhost"}), None) is None
    assert router.route(Element("message", NS_CLIENT, {"to": "bob@localhost/r"}), None) is None
    await bob.nothing()
    router.route(
        Element("message", NS_CLIENT, {"from": "localhost", "to": "bob@localhost/r"}), None
    )
    await bob.expect("message", from_="localhost")
