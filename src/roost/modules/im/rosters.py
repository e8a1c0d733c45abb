"""The rosters service of a host: cache, per-user locks, storage and pushes (RFC 6121 §2, §3).

``Rosters`` is what the roster iq handlers (``roster.py``), the presence module and other
modules (through ``RosterService``) use to read and change rosters:

- §2.1.6 pushes go to every *interested resource* (a session that requested the roster);
- §3 with Appendix A: ``apply`` brings a contact to a subscription state (the tables are in
  ``subscription.py``), storing and pushing the item; an inbound request is held (§3.1.3)
  until answered;
- the rosters of users with a session are cached (loaded on first need, dropped when their
  last session ends); changes to one user's roster are serialized by a per-user lock that is
  never held while routing.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from roost.jid import JID
from roost.modules.api import RosterChanged, RosterService
from roost.modules.im.subscription import State
from roost.storage.roster import Roster, RosterItem, RosterStore
from roost.storage.roster import roster_item_element as item_element
from roost.xml.element import Element
from roost.xml.ns import NS_CLIENT, NS_ROSTER

if TYPE_CHECKING:
    from roost.core.hooks import SessionEnded
    from roost.core.module import ModuleAPI
    from roost.core.session import Session


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
        self.store = api.store(RosterStore)
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
