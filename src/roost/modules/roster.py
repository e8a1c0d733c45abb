"""Rosters: get, set, remove, pushes and versioning (RFC 6121 §2).

Implements RFC 6121:
- §2.1.2 items (jid, name, subscription, ask, groups) and §3.4 ``approved``; §2.1.3, §2.2 get;
- §2.1.5, §2.3, §2.4 set: exactly one item (else ``bad-request``); a malformed 'jid' →
  ``jid-malformed``, a full JID → ``bad-request``, the user's own JID → ``not-allowed``
  (Prosody); an empty group, or a name or group over ``MAX_TEXT_BYTES`` → ``not-acceptable``;
  duplicate groups → ``bad-request`` (§2.3.3 lists them under bad-request); 'subscription',
  'ask' and 'approved' from the client are ignored (§2.1.2.5), except subscription='remove';
- §2.5 remove: absent item → ``item-not-found``; §2.5.2 the subscriptions are cancelled both
  ways (``unsubscribe`` if the user is or asks to be subscribed, ``unsubscribed`` if the contact
  is or asks to be), and the contact gets unavailable presence if it could see the user;
- §2.3.3 a roster iq to another user's bare JID → ``forbidden``;
- §2.1.6 pushes to every *interested resource* (a session that requested the roster);
- §2.6 versioning (stream feature ``urn:xmpp:features:rosterver``): the same 'ver' → an empty
  result; an older one the store still knows → an empty result, then one push per change
  (§2.6.3); anything else → the whole roster with its 'ver'.

``Rosters`` is the host's roster service (``RosterService`` for other modules, and the
presence module's way to change subscription states). It caches the rosters of users with a
session (loaded on first need, dropped when their last session ends), and serializes the
changes to one user's roster with a per-user lock (never held while routing).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Final

from roost.core.hooks import SessionEnded
from roost.core.module import Module, ModuleAPI, Spec
from roost.core.stanza import BARE, SELF, IqRequest
from roost.errors import StanzaError
from roost.jid import JID, JIDError
from roost.modules.api import RosterChanged, RosterService
from roost.modules.subscription import State
from roost.storage.base import Roster, RosterChange, RosterItem
from roost.storage.roster import roster_item_element as item_element
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_ROSTER, NS_ROSTER_VER

if TYPE_CHECKING:
    from roost.core.router import Router
    from roost.core.session import Session
    from roost.stream.c2s import C2SStream

MAX_TEXT_BYTES: Final = 1023  # longest item name or group name accepted (§2.3.3)


def route_all(
    router: Router, stanzas: Sequence[Element], still: Callable[[], bool] | None = None
) -> Awaitable[None] | None:
    """Route server-originated stanzas in order; an awaitable when one of them must wait.
    After such a wait, the rest goes out only while ``still()`` holds (when given)."""
    for i, stanza in enumerate(stanzas):
        pending = router.route(stanza, None)
        if pending is not None:
            return _route_rest(router, pending, stanzas, i + 1, still)
    return None


async def _route_rest(
    router: Router,
    pending: Awaitable[None],
    stanzas: Sequence[Element],
    start: int,
    still: Callable[[], bool] | None,
) -> None:
    await pending
    for stanza in stanzas[start:]:
        if still is not None and not still():
            return
        more = router.route(stanza, None)
        if more is not None:
            await more


def presence(kind: str | None, sender: str, to: str | None = None) -> Element:
    """An empty ``<presence/>`` of ``kind`` (None: available)."""
    stanza = Element("presence", NS_CLIENT, {"from": sender})
    if to is not None:
        stanza.attrs["to"] = to
    if kind is not None:
        stanza.attrs["type"] = kind
    return stanza


class RosterEntry:
    """One user's roster as the module keeps it: items, version, held inbound requests."""

    __slots__ = ("items", "pending", "version")

    def __init__(self, version: int, items: dict[str, RosterItem], pending: dict[str, bytes]):
        self.version = version
        self.items = items
        self.pending = pending

    def state(self, contact: str) -> State:
        """The Appendix A state of ``contact`` (a bare JID string)."""
        item = self.items.get(contact)
        pending_in = contact in self.pending
        if item is None:
            return State(pending_in=pending_in)
        return State(item.subscription, item.ask, pending_in, item.approved)


class _UserLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class Rosters(RosterService):
    """The rosters of one host: cache, storage, pushes (see the module docstring)."""

    def __init__(self, api: ModuleAPI) -> None:
        self.api = api
        self.host = api.host.name
        self.store = api.server.storage.roster
        self.sessions = api.server.sessions
        self._cache: dict[str, RosterEntry] = {}
        self._locks: dict[str, _UserLock] = {}
        self._interested: dict[str, set[Session]] = {}
        self._ids = itertools.count()

    # -- reading ------------------------------------------------------------------------------
    def cached(self, user: JID) -> RosterEntry | None:
        """The roster of a user with a session, if it was loaded already."""
        return self._cache.get(str(user.bare))

    async def entry(self, user: JID) -> RosterEntry:
        """The roster of ``user`` (from the cache, or loaded)."""
        found = self._cache.get(str(user.bare))
        if found is not None:
            return found
        async with self.locked(user) as entry:
            return entry

    @asynccontextmanager
    async def locked(self, user: JID) -> AsyncIterator[RosterEntry]:
        """The roster of ``user``, with no other change to it until the block ends."""
        key = str(user.bare)
        holder = self._locks.get(key)
        if holder is None:
            holder = self._locks[key] = _UserLock()
        holder.users += 1
        try:
            async with holder.lock:
                entry = self._cache.get(key)
                if entry is None:
                    entry = await self._load(user.bare)
                yield entry
        finally:
            holder.users -= 1
            if holder.users == 0:
                del self._locks[key]

    async def _load(self, user: JID) -> RosterEntry:
        roster = await self.store.get(self.host, user.local or "")
        pending = await self.store.pending_in(self.host, user.local or "")
        entry = RosterEntry(roster.version, dict(roster.items), pending)
        if self.sessions.resources(str(user)):  # only online users are cached
            self._cache[str(user)] = entry
        return entry

    async def roster(self, user: JID) -> Roster:
        """RosterService: the roster of ``user``."""
        entry = await self.entry(user)
        return Roster(entry.version, dict(entry.items))

    async def item(self, user: JID, contact: JID) -> RosterItem | None:
        """RosterService: the item for ``contact`` on ``user``'s roster."""
        return (await self.entry(user)).items.get(str(contact.bare))

    async def subscription(self, user: JID, contact: JID) -> str:
        """RosterService: the subscription of ``contact`` on ``user``'s roster."""
        item = (await self.entry(user)).items.get(str(contact.bare))
        return "none" if item is None else item.subscription

    # -- changing (inside ``locked``) -----------------------------------------------------------
    async def save(self, user: JID, entry: RosterEntry, item: RosterItem) -> None:
        """Store an item, push it, tell the other modules."""
        version = await self.store.put(self.host, user.local or "", item)
        entry.items[item.jid] = item
        entry.version = version
        self.push(user, item_element(item), version)
        self.api.fire(RosterChanged(user, item.jid, item))

    async def delete(self, user: JID, entry: RosterEntry, jid: str) -> None:
        """Remove an item, push the removal, tell the other modules."""
        version = await self.store.remove(self.host, user.local or "", jid)
        entry.items.pop(jid, None)
        if version is None:
            return
        entry.version = version
        self.push(user, Element("item", NS_ROSTER, {"jid": jid, "subscription": "remove"}), version)
        self.api.fire(RosterChanged(user, jid, None))

    async def hold(self, user: JID, entry: RosterEntry, jid: str, request: bytes | None) -> None:
        """Keep (or, with None, forget) the inbound subscription request from ``jid``."""
        await self.store.set_pending_in(self.host, user.local or "", jid, request)
        if request is None:
            entry.pending.pop(jid, None)
        else:
            entry.pending[jid] = request

    async def apply(
        self, user: JID, entry: RosterEntry, contact: str, new: State, request: bytes | None
    ) -> None:
        """Bring ``contact`` to the Appendix A state ``new``: store, push (§3)."""
        if new.pending_in != (contact in entry.pending):
            await self.hold(user, entry, contact, request if new.pending_in else None)
        item = entry.items.get(contact)
        if item is None:
            if new.subscription == "none" and not new.pending_out and not new.approved:
                return  # "None + Pending In" has no item (A.1: not pushed)
            item = RosterItem(contact)
        updated = replace(
            item, subscription=new.subscription, ask=new.pending_out, approved=new.approved
        )
        if updated != item or contact not in entry.items:
            await self.save(user, entry, updated)

    # -- pushes (§2.1.6) -------------------------------------------------------------------------
    def interested(self, session: Session) -> None:
        """``session`` requested the roster: it gets the pushes from now on."""
        if session.jid is not None:
            self._interested.setdefault(str(session.jid.bare), set()).add(session)

    def push(self, user: JID, item: Element, version: int, only: Session | None = None) -> None:
        """Send a roster push with ``item`` to the interested resources (or only one)."""
        targets = [only] if only is not None else self._interested.get(str(user.bare), ())
        if not targets:
            return
        query = Element("query", NS_ROSTER, {"ver": str(version)}, [item])
        for session in targets:
            iq = Element("iq", NS_CLIENT, {"type": "set", "id": f"push{next(self._ids)}"}, [query])
            iq.attrs["to"] = session.jid_str
            self.api.deliver(session, iq)

    def ended(self, event: SessionEnded) -> None:
        """Forget the session; drop the cached roster with the user's last session."""
        session = event.session
        bare = str(session.jid.bare)
        interested = self._interested.get(bare)
        if interested is not None:
            interested.discard(session)
            if not interested:
                del self._interested[bare]
        if not self.sessions.resources(bare):
            self._cache.pop(bare, None)


class RosterModule(Module):
    """jabber:iq:roster for the host's accounts, and the host's roster service."""

    name = "roster"
    implements = (Spec("RFC 6121", "§2", note="with versioning (§2.6) and pre-approval (§3.4)"),)

    def setup(self, api: ModuleAPI) -> None:
        self.rosters = Rosters(api)
        api.provide(RosterService, self.rosters)
        api.provide(Rosters, self.rosters)
        api.on_iq("get", SELF, NS_ROSTER, "query", self.get)
        api.on_iq("set", SELF, NS_ROSTER, "query", self.set)
        api.on_iq("get", BARE, NS_ROSTER, "query", self.foreign)
        api.on_iq("set", BARE, NS_ROSTER, "query", self.foreign)
        api.stream_feature(self.feature)
        api.hook(SessionEnded, self.rosters.ended, priority=-100)  # after presence's broadcast

    def feature(self, stream: C2SStream) -> Element:
        """``<ver xmlns='urn:xmpp:features:rosterver'/>`` (§2.6.1)."""
        return Element("ver", NS_ROSTER_VER)

    def foreign(self, request: IqRequest) -> None:
        """Someone else's roster (§2.3.3)."""
        raise StanzaError("forbidden", "a roster belongs to its own account")

    async def get(self, request: IqRequest) -> Element | None:
        """The roster, or what changed since the client's version (§2.2, §2.6)."""
        user, session = request.sender.bare, request.origin
        ver = request.payload.get("ver")
        rosters = self.rosters
        async with rosters.locked(user) as entry:
            if session is not None:
                rosters.interested(session)
            if ver is not None and ver == str(entry.version):
                return None
            if ver and ver.isascii() and ver.isdigit() and session is not None:
                changes = await rosters.store.changes_since(
                    rosters.host, user.local or "", int(ver)
                )
                if changes is not None:
                    # after the empty result, which the router sends when this returns
                    asyncio.get_running_loop().call_soon(self._catch_up, user, session, changes)
                    return None
            query = Element("query", NS_ROSTER, {"ver": str(entry.version)})
            query.children.extend(item_element(item) for item in entry.items.values())
            return query

    def _catch_up(self, user: JID, session: Session, changes: list[RosterChange]) -> None:
        for change in changes:
            item = change.item
            element = (
                item_element(item)
                if item is not None
                else Element("item", NS_ROSTER, {"jid": change.jid, "subscription": "remove"})
            )
            self.rosters.push(user, element, change.version, only=session)

    async def set(self, request: IqRequest) -> None:
        """Add, update (§2.3, §2.4) or remove (§2.5) one item."""
        items = list(request.payload.elements())
        if len(items) != 1 or items[0].name != "item" or items[0].xmlns != NS_ROSTER:
            raise StanzaError("bad-request", "a roster set carries exactly one item")
        element = items[0]
        user = request.sender.bare
        contact = _contact(element, user)
        if element.get("subscription") == "remove":
            await self._remove(user, contact)
            return
        name = element.get("name") or None
        groups = [group.text for group in element.elements() if group.name == "group"]
        _check_texts(name, groups)
        async with self.rosters.locked(user) as entry:
            old = entry.items.get(contact) or RosterItem(contact)
            await self.rosters.save(user, entry, replace(old, name=name, groups=tuple(groups)))

    async def _remove(self, user: JID, contact: str) -> None:
        rosters = self.rosters
        async with rosters.locked(user) as entry:
            state = entry.state(contact)
            if contact not in entry.items and not state.pending_in:
                raise StanzaError("item-not-found")
            if state.pending_in:
                await rosters.hold(user, entry, contact, None)
            if contact in entry.items:
                await rosters.delete(user, entry, contact)
        me = str(user)
        stanzas = []
        if state.has_to or state.pending_out:
            stanzas.append(presence("unsubscribe", me, contact))
        if state.has_from or state.pending_in:
            stanzas.append(presence("unsubscribed", me, contact))
        if state.has_from:
            mine = self.api.server.sessions.resources(me)
            stanzas.extend(
                presence("unavailable", s.jid_str, contact) for s in mine if s.presence is not None
            )
        pending = route_all(self.api.server.router, stanzas)
        if pending is not None:
            await pending


def _contact(element: Element, user: JID) -> str:
    """The item's 'jid', checked (§2.1.2.2)."""
    raw = element.get("jid")
    if not raw:
        raise StanzaError("bad-request", "the item has no 'jid'")
    try:
        jid = JID.parse(raw)
    except JIDError:
        raise StanzaError("jid-malformed") from None
    if jid.resource is not None:
        raise StanzaError("bad-request", "roster items are bare JIDs")
    if jid == user:
        raise StanzaError("not-allowed", "the account itself cannot be a contact")
    return str(jid)


def _check_texts(name: str | None, groups: list[str]) -> None:
    """§2.3.3: names and groups the server refuses."""
    if name is not None and len(name.encode()) > MAX_TEXT_BYTES:
        raise StanzaError("not-acceptable", f"the name is longer than {MAX_TEXT_BYTES} bytes")
    for group in groups:
        if not group:
            raise StanzaError("not-acceptable", "a group name is empty")
        if len(group.encode()) > MAX_TEXT_BYTES:
            raise StanzaError("not-acceptable", f"a group is longer than {MAX_TEXT_BYTES} bytes")
    if len(set(groups)) != len(groups):
        raise StanzaError("bad-request", "the same group is listed twice")
