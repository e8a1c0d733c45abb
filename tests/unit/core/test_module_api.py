"""The module API (docs/architecture.md §5) on an in-process server without other modules:
iq handlers, stanza handlers and filters, pre-route, hooks, services between modules, stores,
server-originated requests, tracked tasks and timers, and unload."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from roost.core.hooks import ARCHIVE, DEFAULT, FILTER, LATE
from roost.core.stanza import BARE, FULL, HOST, IqRequest, Outbound, Routed, StanzaHandler
from roost.errors import StanzaError
from roost.storage.kv import KeyValueStore
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT
from tests.unit.harness import Roost, condition, settle

NS: str = "urn:test"


def query(iq_id: str, to: str = "localhost", kind: str = "get", name: str = "q") -> str:
    return f"<iq type='{kind}' id='{iq_id}' to='{to}'><{name} xmlns='{NS}'/></iq>"


# --- iq handlers ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_an_iq_handler_answers_with_its_payload_or_its_error(bare: Roost) -> None:
    def answer(request: IqRequest) -> Element:
        return Element("a", NS, {"asked": request.payload.name})

    def refuse(request: IqRequest) -> None:
        raise StanzaError("item-not-found", "no such thing")

    def crash(request: IqRequest) -> None:
        raise RuntimeError("a bug")

    async def later(request: IqRequest) -> None:
        await asyncio.sleep(0.01)

    api = bare.api()
    api.on_iq("get", HOST, NS, "q", answer)
    api.on_iq("get", HOST, NS, "r", refuse)
    api.on_iq("get", HOST, NS, "c", crash)
    api.on_iq("set", HOST, NS, "q", later)
    bob = await bare.bound("bob")
    await bob.send(query("1"))
    reply = await bob.expect("iq", type="result", id="1", from_="localhost")
    payload = reply.find("a", NS)
    assert payload is not None
    assert payload.get("asked") == "q"
    await bob.send(query("2", name="r"))
    assert condition(await bob.expect("iq", id="2")) == "item-not-found"
    await bob.send(query("3", name="c"))
    assert condition(await bob.expect("iq", id="3")) == "internal-server-error"
    await bob.send(query("4", kind="set"))  # awaited before send returns
    reply = await bob.expect("iq", type="result", id="4")
    assert reply.children == []


@pytest.mark.asyncio
async def test_an_iq_key_takes_one_handler_and_unload_frees_it(bare: Roost) -> None:
    api = bare.api()
    api.on_iq("get", HOST, NS, "q", lambda r: None)
    with pytest.raises(ValueError, match="exists already"):
        bare.api("other").on_iq("get", HOST, NS, "q", lambda r: None)
    api.feature(NS)
    api.identity("server", "im", "roost")
    bob = await bare.bound("bob")
    await bob.send(query("1"))
    await bob.expect("iq", type="result", id="1")
    api.unload()
    await bob.send(query("2"))
    assert condition(await bob.expect("iq", id="2")) == "service-unavailable"
    host = bare.core.hosts["localhost"]
    assert (host.features, host.identities, host.iq_handlers) == ([], [], {})


# --- stanza handlers, filters and pre-route -------------------------------------------------


@pytest.mark.asyncio
async def test_stanza_handlers_run_by_priority_until_one_handles(bare: Roost) -> None:
    calls: list[str] = []

    def handler(name: str, handled: bool) -> StanzaHandler:
        def run(routed: Routed) -> bool:
            calls.append(name)
            return handled

        return run

    api = bare.api()
    api.on("message", BARE, handler("default", True), DEFAULT)
    api.on("message", BARE, handler("archive", False), ARCHIVE)
    api.on("message", BARE, handler("late", True), LATE)  # never reached
    bob = await bare.bound("bob")
    await bob.send("<message to='alice@localhost' id='m1'/>")
    assert calls == ["archive", "default"]
    await bob.nothing()


@pytest.mark.asyncio
async def test_an_async_stanza_handler_is_awaited_before_the_next(bare: Roost) -> None:
    calls: list[str] = []
    gate = asyncio.Event()

    async def first(routed: Routed) -> bool:
        calls.append("first")
        await gate.wait()
        calls.append("first done")
        return False

    def second(routed: Routed) -> bool:
        calls.append("second")
        return True

    api = bare.api()
    api.on("message", BARE, first, ARCHIVE)
    api.on("message", BARE, second, DEFAULT)
    bob = await bare.bound("bob")
    sending = asyncio.ensure_future(bob.send("<message to='alice@localhost'/>"))
    await asyncio.sleep(0.01)
    assert calls == ["first"]
    gate.set()
    await sending
    assert calls == ["first", "first done", "second"]


@pytest.mark.asyncio
async def test_filters_see_every_stanza_in_priority_order_and_may_stop_it(bare: Roost) -> None:
    seen: list[tuple[str, str]] = []

    def policy(routed: Routed) -> bool:
        seen.append(("policy", routed.stanza.name))
        return routed.stanza.get("id") == "blocked"

    def observer(routed: Routed) -> None:
        seen.append(("observer", routed.stanza.name))

    api = bare.api()
    api.filter(observer, ARCHIVE)
    api.filter(policy, FILTER)
    answered: list[str] = []
    api.on_iq("get", HOST, NS, "q", lambda r: answered.append(r.stanza.attrs["id"]))
    bob = await bare.bound("bob")
    await bob.send(query("blocked"))
    await bob.send(query("passes"))
    await bob.send("<presence to='alice@localhost/x'/>")
    assert seen == [
        ("policy", "iq"),
        ("policy", "iq"),
        ("observer", "iq"),
        ("policy", "presence"),
        ("observer", "presence"),
    ]
    assert answered == ["passes"]
    await bob.expect("iq", type="result", id="passes")
    await bob.nothing()  # the blocked iq got no answer: the filter took it


@pytest.mark.asyncio
async def test_pre_route_sees_what_accounts_send_to_any_domain(bare: Roost) -> None:
    seen: list[tuple[str, str, str]] = []

    def outbound(out: Outbound) -> bool:
        seen.append((str(out.sender), str(out.to), out.host.name))
        return out.stanza.get("id") == "held"

    bare.api().pre_route(outbound)
    bob = await bare.bound("bob")
    await bob.send("<message to='juliet@remote.example' id='held'/>")
    await bob.nothing()  # consumed before the remote router could bounce it
    await bob.send("<message to='juliet@remote.example' id='out'/>")
    assert condition(await bob.expect("message", id="out")) == "remote-server-not-found"
    await bob.send("<message to='alice@localhost' id='local'/>")
    await bob.expect("message", id="local", type="error")  # no module: service-unavailable
    assert seen == [
        ("bob@localhost/r", "juliet@remote.example", "localhost"),
        ("bob@localhost/r", "juliet@remote.example", "localhost"),
        ("bob@localhost/r", "alice@localhost", "localhost"),
    ]


@pytest.mark.asyncio
async def test_a_handler_error_is_bounced_to_the_sender(bare: Roost) -> None:
    def refuse(out: Outbound) -> None:
        raise StanzaError("not-acceptable", "policy")

    bare.api().pre_route(refuse)
    bob = await bare.bound("bob")
    await bob.send("<message to='alice@localhost/r' id='m1'/>")
    assert condition(await bob.expect("message", id="m1")) == "not-acceptable"


# --- hooks ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Happened:
    what: str


@pytest.mark.asyncio
async def test_async_hooks_are_awaited_in_priority_order(bare: Roost) -> None:
    calls: list[str] = []
    gate = asyncio.Event()

    async def slow(event: Happened) -> None:
        calls.append("slow")
        await gate.wait()
        calls.append("slow done")

    api = bare.api()
    api.hook(Happened, lambda e: calls.append("late " + e.what), LATE)
    api.hook(Happened, slow, ARCHIVE)
    api.hook(Happened, lambda e: calls.append("first " + e.what), FILTER)
    api.fire(Happened("x"))  # finishes in a task of the module
    await asyncio.sleep(0.01)
    assert calls == ["first x", "slow"]
    gate.set()
    await asyncio.sleep(0.01)
    assert calls == ["first x", "slow", "slow done", "late x"]
    assert await settle_answer(bare, Happened("y")) is False
    api.hook(Happened, lambda e: True, DEFAULT)  # stops the chain before LATE
    calls.clear()
    assert await settle_answer(bare, Happened("z")) is True
    assert calls == ["first z", "slow", "slow done"]


async def settle_answer(bare: Roost, event: object) -> bool:
    result = bare.core.hosts["localhost"].hooks.fire(event)
    return result if isinstance(result, bool) else await result


@pytest.mark.asyncio
async def test_a_global_hook_sees_the_server_bus_only(bare: Roost) -> None:
    calls: list[str] = []
    api = bare.api()
    api.hook_global(Happened, lambda e: calls.append("global " + e.what))
    api.fire(Happened("on host"))
    await settle(bare.core.hooks.fire(Happened("on server")))
    assert calls == ["global on server"]
    api.unload()
    assert bare.core.hooks.has(Happened) is False


# --- services, stores -----------------------------------------------------------------------


class Greeter:
    def greet(self, name: str) -> str:
        return "hello " + name


@pytest.mark.asyncio
async def test_provide_service_and_optional(bare: Roost) -> None:
    provider, user = bare.api("provider"), bare.api("user")
    assert user.optional(Greeter) is None
    with pytest.raises(LookupError, match="provides Greeter"):
        user.service(Greeter)
    provider.provide(Greeter, Greeter())
    assert user.service(Greeter).greet("bob") == "hello bob"
    assert user.optional(Greeter) is user.service(Greeter)
    other_host = await Roost.start(bare.directory / "other", ("example.org",))
    try:
        assert other_host.api("user", "example.org").optional(Greeter) is None  # per host
    finally:
        await other_host.stop()
    provider.unload()
    assert user.optional(Greeter) is None


@pytest.mark.asyncio
async def test_store_is_the_storage_registrys_store(bare: Roost) -> None:
    kv = bare.api().store(KeyValueStore)
    assert kv is bare.core.storage.store(KeyValueStore)
    await kv.set("localhost", "bob", "test", "k", b"v")
    assert await bare.core.storage.store(KeyValueStore).get("localhost", "bob", "test", "k") == (
        b"v"
    )


# --- requests, tasks, timers ----------------------------------------------------------------


def ping_to(to: str) -> Element:
    iq = Element("iq", NS_CLIENT, {"type": "get", "to": to})
    iq.sub("q", NS)
    return iq


@pytest.mark.asyncio
async def test_a_request_is_answered_only_by_the_entity_it_was_sent_to(bare: Roost) -> None:
    alice, mallory = await bare.bound("alice"), await bare.bound("mallory")
    api = bare.api()
    asking = api.spawn(api.request(ping_to("alice@localhost/r"), timeout=2))
    request = await alice.expect("iq", type="get", from_="localhost", to="alice@localhost/r")
    iq_id = request.attrs["id"]
    await mallory.send(f"<iq type='result' id='{iq_id}' to='localhost'><forged xmlns='{NS}'/></iq>")
    await asyncio.sleep(0.01)
    assert not asking.done()  # the wrong sender is ignored
    await alice.send(f"<iq type='result' id='{iq_id}' to='localhost'><ok xmlns='{NS}'/></iq>")
    answer = await asyncio.wait_for(asking, 1)
    assert answer.get("from") == "alice@localhost/r"
    assert answer.find("ok", NS) is not None
    assert len(bare.core.iq) == 0
    await mallory.nothing()


@pytest.mark.asyncio
async def test_a_request_raises_the_error_reply_or_times_out(bare: Roost) -> None:
    alice = await bare.bound("alice")
    api = bare.api()
    asking = api.spawn(api.request(ping_to("alice@localhost/r")))
    iq_id = (await alice.expect("iq", type="get")).attrs["id"]
    await alice.send(
        f"<iq type='error' id='{iq_id}' to='localhost'><error type='cancel'>"
        "<feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    )
    with pytest.raises(StanzaError) as raised:
        await asking
    assert raised.value.condition == "feature-not-implemented"
    with pytest.raises(StanzaError) as raised:
        await api.request(ping_to("alice@localhost/r"), timeout=0.05)
    assert raised.value.condition == "remote-server-timeout"
    assert len(bare.core.iq) == 0


@pytest.mark.asyncio
async def test_spawned_tasks_are_awaited_at_stop_and_cancelled_past_the_grace(
    bare: Roost,
) -> None:
    done: list[str] = []

    async def write(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        done.append(name)

    api = bare.api()
    quick = api.spawn(write("quick", 0.05))
    stuck = api.spawn(write("stuck", 10))
    await api.stop(grace=0.2)
    assert done == ["quick"]
    assert quick.done()
    assert not quick.cancelled()
    assert stuck.cancelled()


@pytest.mark.asyncio
async def test_every_ticks_until_unload(bare: Roost) -> None:
    ticks: list[str] = []
    api = bare.api()
    api.every(0.01, lambda: ticks.append("sync"))

    async def async_tick() -> None:
        ticks.append("async")

    api.every(0.01, async_tick)  # the coroutine it returns runs in a tracked task
    await asyncio.sleep(0.06)
    assert ticks.count("sync") >= 2
    assert ticks.count("async") >= 2
    api.unload()
    await asyncio.sleep(0)  # a tick spawned just before unload still finishes
    count = len(ticks)
    await asyncio.sleep(0.03)
    assert len(ticks) == count


@pytest.mark.asyncio
async def test_send_routes_a_server_stanza_through_the_router(bare: Roost) -> None:
    alice = await bare.bound("alice")
    api = bare.api()

    def mark(routed: Routed) -> bool:
        routed.stanza.attrs["seen"] = "yes"
        return False  # the default delivery goes on

    api.on("message", FULL, mark)
    api.send(Element("message", NS_CLIENT, {"from": "localhost", "to": "alice@localhost/r"}))
    await alice.expect("message", from_="localhost", seen="yes")
