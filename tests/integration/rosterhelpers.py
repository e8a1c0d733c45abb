"""Helpers for the roster, presence and subscription tests (RFC 6121 §2-§4), over raw sockets.

- ``Store``: the shared server's SQLite file opened from the test process, to create accounts
  quickly (one SCRAM derivation per run instead of a CLI process per account) and to write or
  read the roster state of a pair of accounts: Appendix A has rows that two servers which agree
  never reach (a "subscribed" for a request never made), so the table-driven tests put both
  rosters in the state they need before logging in (rosters are cached only while online).
- ``Peer``: a logged-in raw client with roster and presence helpers.
- Synchronising without sleeps: a session's stanzas are processed in order (RFC 6120 §10.1) and
  the server finishes routing a presence before it reads the next stanza, so once the sender's
  ping is answered everything it caused has been written; a ping by a receiver then collects
  what reached it (``ping_server`` returns what came before the answer).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from functools import cache

from roost.auth.credentials import Credentials, derive
from roost.config import SQLITE_FILE
from roost.modules.im.subscription import State
from roost.storage.base import RosterItem, Storage, open_storage
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_ROSTER, NS_STANZAS
from roost.xml.serializer import serialize
from tests.integration.harness import DOMAIN, PASSWORD, RawClient, ServerProcess
from tests.integration.rawhelpers import local, ping_server

_ids = itertools.count()


@cache
def credentials() -> Credentials:
    """The SCRAM credentials of PASSWORD (derived once per test run)."""
    return derive(PASSWORD)


# -- the server's storage ----------------------------------------------------------------------
class Store:
    """The shared test server's SQLite storage, opened from the test process."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def accounts(self, *prefixes: str) -> list[str]:
        """New accounts, one per prefix; their bare JIDs."""
        made = []
        for prefix in prefixes:
            user = f"{prefix}-{secrets.token_hex(4)}"
            await self.storage.accounts.create(DOMAIN, user, credentials())
            made.append(f"{user}@{DOMAIN}")
        return made

    async def put_state(self, user: str, contact: str, state: State) -> None:
        """Write ``contact``'s Appendix A state on ``user``'s roster (both offline)."""
        if state.subscription != "none" or state.pending_out or state.approved:
            item = RosterItem(contact, None, state.subscription, state.pending_out, state.approved)
            await self.storage.roster.put(DOMAIN, local(user), item)
        if state.pending_in:
            request = presence(to=user, kind="subscribe")
            request.attrs["from"] = contact
            await self.storage.roster.set_pending_in(
                DOMAIN, local(user), contact, serialize(request)
            )

    async def state(self, user: str, contact: str) -> State:
        """``contact``'s Appendix A state on ``user``'s roster, as stored."""
        roster = await self.storage.roster.get(DOMAIN, local(user))
        pending = contact in await self.storage.roster.pending_in(DOMAIN, local(user))
        item = roster.items.get(contact)
        if item is None:
            return State(pending_in=pending)
        return State(item.subscription, item.ask, pending, item.approved)


@asynccontextmanager
async def open_store(server: ServerProcess) -> AsyncIterator[Store]:
    """The server's storage for the duration of a block."""
    storage = open_storage("sqlite", path=server.directory / "data" / SQLITE_FILE)
    await storage.open()
    try:
        yield Store(storage)
    finally:
        await storage.close()


# -- stanzas -------------------------------------------------------------------------------------
def presence(
    to: str | None = None,
    kind: str | None = None,
    *,
    priority: int | None = None,
    status: str | None = None,
) -> Element:
    """A client's presence stanza."""
    stanza = Element("presence", NS_CLIENT)
    if to is not None:
        stanza.attrs["to"] = to
    if kind is not None:
        stanza.attrs["type"] = kind
    if priority is not None:
        stanza.sub("priority", text=str(priority))
    if status is not None:
        stanza.sub("status", text=status)
    return stanza


def roster_iq(kind: str, *items: Element, ver: str | None = None, to: str | None = None) -> Element:
    """A roster get or set."""
    iq = Element("iq", NS_CLIENT, {"type": kind, "id": f"r{next(_ids)}"})
    if to is not None:
        iq.attrs["to"] = to
    query = iq.sub("query", NS_ROSTER)
    if ver is not None:
        query.attrs["ver"] = ver
    query.children.extend(items)
    return iq


def item(jid: str, name: str | None = None, groups: Iterable[str] = (), **attrs: str) -> Element:
    """A roster ``<item/>`` as a client sends it."""
    element = Element("item", NS_ROSTER, {"jid": jid, **attrs})
    if name is not None:
        element.attrs["name"] = name
    for group in groups:
        element.sub("group", text=group)
    return element


def error_condition(stanza: Element) -> str:
    """The defined condition of an error stanza."""
    assert stanza.get("type") == "error", serialize(stanza)
    error = stanza.find("error", NS_CLIENT)
    assert error is not None, serialize(stanza)
    return next(c.name for c in error.elements() if c.xmlns == NS_STANZAS and c.name != "text")


def pushes(stanzas: Iterable[Element]) -> list[Element]:
    """The ``<item/>`` of each roster push among ``stanzas``, in order."""
    found: list[Element] = []
    for stanza in stanzas:
        query = stanza.find("query", NS_ROSTER)
        if stanza.name == "iq" and stanza.get("type") == "set" and query is not None:
            found.extend(query.elements())
    return found


def presences(stanzas: Iterable[Element], sender: str | None = None) -> list[Element]:
    """The presence stanzas among ``stanzas`` (from ``sender`` or its resources, if given)."""
    return [
        s
        for s in stanzas
        if s.name == "presence"
        and (sender is None or (s.get("from") or "").partition("/")[0] == sender.partition("/")[0])
    ]


def kinds(stanzas: Iterable[Element]) -> list[str]:
    """The presence types ("available" for none) of the presence stanzas, in order."""
    return [s.get("type") or "available" for s in stanzas if s.name == "presence"]


# -- clients ----------------------------------------------------------------------------------
class Peer:
    """A raw client logged in to the shared server."""

    def __init__(self, client: RawClient, full: str) -> None:
        self.client = client
        self.full = full
        self.bare = full.partition("/")[0]

    async def send(self, stanza: Element) -> None:
        """Send one stanza."""
        await self.client.send(stanza)

    async def query(self, iq: Element) -> tuple[Element, list[Element]]:
        """Send an iq; its reply and what arrived before the reply."""
        await self.client.send(iq)
        before: list[Element] = []
        while True:
            stanza = await self.client.element()
            if stanza.name == "iq" and stanza.get("id") == iq.get("id"):
                return stanza, before
            before.append(stanza)

    async def roster(self, ver: str | None = None) -> tuple[Element, list[Element]]:
        """A roster get: the result and what arrived before it."""
        reply, before = await self.query(roster_iq("get", ver=ver))
        assert reply.get("type") == "result", serialize(reply)
        return reply, before

    async def sync(self) -> list[Element]:
        """What reached this client before the answer to a ping sent now."""
        return await ping_server(self.client)

    async def wait_for(self, match: Callable[[Element], bool], timeout: float = 5.0) -> Element:
        """Read until a stanza that ``match``es (the others are dropped)."""
        while True:
            stanza = await self.client.element(timeout)
            if match(stanza):
                return stanza

    async def close(self) -> None:
        """Close the connection."""
        await self.client.close()


class Peers:
    """Peers logged in for one test, closed at its end."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.all: list[Peer] = []

    async def login(
        self,
        bare: str,
        resource: str | None = None,
        *,
        roster: bool = True,
        available: bool = True,
        priority: int | None = None,
    ) -> Peer:
        """Log in; request the roster and send initial presence as asked; settle."""
        client = RawClient(self.server)
        await client.connect()
        full = await client.login(local(bare), resource=resource or f"r{next(_ids)}")
        peer = Peer(client, full)
        self.all.append(peer)
        if roster:
            await peer.roster()
        if available:
            await peer.send(presence(priority=priority))
        await peer.sync()
        return peer

    async def close(self) -> None:
        """Close every peer."""
        for peer in self.all:
            await peer.close()


async def settle(sender: Peer, *receivers: Peer) -> list[list[Element]]:
    """Once ``sender``'s stanzas are processed, what reached each receiver (sender first)."""
    return [await sender.sync()] + [await receiver.sync() for receiver in receivers]
