"""Blocking Command: users block JIDs and the server enforces it on every stanza (XEP-0191).

XEP-0191 1.3: §3.1 feature ``urn:xmpp:blocking`` on the host; §3.2 the list; §3.3 block (no
item: ``bad-request``; an invalid JID: ``jid-malformed``); §3.4 unblock; §3.5 unblock all;
§6 matching in XEP-0016 §2.1 order: full JID, bare JID, domain/resource, domain (subdomains
do not match: 1.3 dropped them; Prosody too).
- Pushes go to the resources *that requested the list* (§3.3-§3.5; the issue's "all
  resources" read as the XEP's: a resource that never asked holds no list. Prosody too).
- Block: unavailable presence to newly blocked contacts that may see the user's presence
  ('from'/'both'), and (the §3.3 SHOULD) from their local resources to the user's. Unblock:
  the user's current presence to 'from'/'both' contacts (§3.4) and a probe to 'to'/'both'
  contacts, so that their presence shows again (the open note of §3.4).
- Enforcement, at three points of the router. Outbound, a pre-route handler on the sender's
  host (FILTER priority, before observers such as an archive), whatever the destination:
  from a user to a JID the user blocks, messages and iq get/set get ``not-acceptable`` +
  ``<blocked xmlns='urn:xmpp:blocking:errors'/>`` (type ``cancel``, §3.3's example);
  presence is dropped (an error per broadcast would be noise; Prosody drops too). Inbound, a
  host filter on the recipient's host: from a JID the recipient blocks, presence (probes,
  subscriptions) and iq results/errors are dropped, messages and iq get/set get
  ``service-unavailable`` (the user looks offline). Those error replies are the router's
  bounce (or, for ``<blocked/>``, ``api.send(policy=False)``): they skip the policy that the
  refused stanza went through. On delivery, an outgoing filter: nothing from a JID the user
  blocks reaches the user's sessions, also what was held from before the block (stored
  offline messages, held subscription requests) — except errors (the server's answers to
  what the user sent) and unavailable presence (what makes a blocked contact look offline).
  Never blocked (§5 note): a user's resources among themselves, and the user's own server.
- The §3.3 farewell leaves through ``PresenceService.send_unavailable``, hence through the
  pre-route handler, after the block is in force: a ``Farewell`` (user, contact) recorded
  first lets one ``type='unavailable'`` per available resource pass for a few seconds,
  whether presence routes at once or after awaiting storage.
- Cost: lists live in memory per host (a frozenset per user, one shared empty set), loaded
  from the blocking store at first need (the handler then returns an awaitable: the session
  waits, RFC 6120 §10.1); users without a list cost a dict lookup each. The pre-route handler
  loads the sender's list on the first stanza a user sends (to anyone, oneself included), so
  it is in memory before anything is delivered from storage at initial presence; the
  outgoing filter, which cannot wait, relies on that. ``CACHE_SIZE`` users at most: the oldest
  list of a user without a session goes out (users with one stay); changes update it in
  place; a load that raced a change is not kept.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from roost.core.hooks import FILTER, SessionEnded
from roost.core.module import Module, ModuleAPI, Spec
from roost.core.stanza import SELF, IqRequest, Outbound, Routed
from roost.errors import StanzaError
from roost.jid import JID, JIDError
from roost.modules.api import PresenceService, RosterService
from roost.stanzas import error_reply, is_error_or_result
from roost.storage.blocking import BlockingStore
from roost.xml.element import Element
from roost.xml.ns import NS_BLOCKING, NS_BLOCKING_ERRORS, NS_CLIENT

if TYPE_CHECKING:
    from roost.core.session import Session
    from roost.storage.base import Roster

MAX_ITEMS: Final = 10_000  # JIDs one user may block (more: policy-violation)
CACHE_SIZE: Final = 100_000  # users whose block list is held in memory, per host
EVICT_SCAN: Final = 16  # oldest cached lists looked at for one of a user without a session
FAREWELL_SECONDS: Final = 5.0  # how long the unavailable presence of §3.3 may pass
SEES_USER: Final = frozenset({"from", "both"})  # the contact receives the user's presence
USER_SEES: Final = frozenset({"to", "both"})  # the user receives the contact's presence

_EMPTY: Final[frozenset[str]] = frozenset()
Items = frozenset[str]


def matching_item(items: Items, jid: JID) -> str | None:
    """The item of ``items`` that blocks ``jid`` (XEP-0191 §6 order), or None."""
    resource = jid.resource
    if jid.local is not None:
        if resource is not None:
            full = str(jid)
            if full in items:
                return full
        bare = str(jid.bare)
        if bare in items:
            return bare
    if resource is not None:
        domain_resource = f"{jid.domain}/{resource}"
        if domain_resource in items:
            return domain_resource
    return jid.domain if jid.domain in items else None


def requested_items(payload: Element) -> list[str]:
    """The normalised JIDs of the ``<item/>`` children, in order, without repeats."""
    found: dict[str, None] = {}
    for child in payload.elements():
        if child.name != "item" or child.xmlns != NS_BLOCKING:
            continue
        raw = child.attrs.get("jid")
        if raw is None:
            raise StanzaError("bad-request", "an <item/> without a 'jid'")
        try:
            found[str(JID.parse(raw))] = None
        except JIDError:
            raise StanzaError("jid-malformed", f"not a JID: {raw[:100]!r}") from None
        if len(found) > MAX_ITEMS:
            raise StanzaError("policy-violation", f"at most {MAX_ITEMS} JIDs may be blocked")
    return list(found)


@dataclass(slots=True)
class Farewell:
    """Unavailable presences still allowed through to JIDs a new block matches (§3.3)."""

    deadline: float
    left: int = 0


def _own_server(user: JID, other: JID) -> bool:
    """``other`` is the server of ``user``'s account (its domain, with or without resource)."""
    return other.local is None and other.domain == user.domain


class Blocking(Module):
    """XEP-0191 block lists: the iq protocol, pushes, presence side effects and enforcement."""

    name = "blocking"
    implements = (
        Spec("XEP-0191", "1.3", note="pushes go to the resources that requested the list"),
    )
    depends = ("presence",)

    def __init__(self, api: ModuleAPI) -> None:
        super().__init__(api)
        self._host = api.host.name
        self.store = api.store(BlockingStore)
        self._lists: dict[str, Items] = {}  # localpart -> blocked JIDs (loaded users only)
        self._epoch = 0  # bumped by every change: a load that spans a change is not cached
        self._interested: dict[str, set[Session]] = {}  # localpart -> asked for the list
        self._farewells: dict[tuple[str, str], Farewell] = {}  # (localpart, contact bare)
        self._push_ids = itertools.count(1)

    def setup(self, api: ModuleAPI) -> None:
        api.feature(NS_BLOCKING)
        api.on_iq("get", SELF, NS_BLOCKING, "blocklist", self.blocklist)
        api.on_iq("set", SELF, NS_BLOCKING, "block", self.block)
        api.on_iq("set", SELF, NS_BLOCKING, "unblock", self.unblock)
        api.pre_route(self.outbound, priority=FILTER)  # before observers (archive, carbons)
        api.filter(self.inbound)
        api.outgoing(self.deliverable, priority=FILTER)
        api.hook(SessionEnded, self.session_ended)

    # -- the protocol (§3.2-§3.5) --------------------------------------------------------------
    async def blocklist(self, request: IqRequest) -> Element:
        """§3.2: the list; the asking resource will get the pushes."""
        local = request.sender.local or ""
        items = await self.items(local)
        if request.origin is not None:
            self._interested.setdefault(local, set()).add(request.origin)
        payload = Element("blocklist", NS_BLOCKING)
        for jid in sorted(items):
            payload.sub("item", jid=jid)
        return payload

    async def block(self, request: IqRequest) -> None:
        """§3.3: block the items, push, say goodbye to the blocked contacts."""
        user = request.sender
        local = user.local or ""
        jids = requested_items(request.payload)
        if not jids:
            raise StanzaError("bad-request", "<block/> needs at least one <item/>")
        current = await self.items(local)
        added = [jid for jid in jids if jid not in current]
        if len(current) + len(added) > MAX_ITEMS:
            raise StanzaError("policy-violation", f"at most {MAX_ITEMS} JIDs may be blocked")
        # all of them, not only ``added``: another resource may have changed the list meanwhile
        await self.store.add(self._host, local, jids)
        self._change(local, lambda items: items.union(jids))
        self._push(local, "block", jids)
        if added:
            await self._hide(user.bare, added, current)

    async def unblock(self, request: IqRequest) -> None:
        """§3.4 (items) and §3.5 (no item: everyone): unblock, push, show presence again."""
        user = request.sender
        local = user.local or ""
        jids = requested_items(request.payload)
        current = await self.items(local)
        if jids:
            removed = [jid for jid in jids if jid in current]
            await self.store.remove(self._host, local, jids)
            self._change(local, lambda items: items.difference(jids))
        else:
            removed = sorted(current)
            await self.store.clear(self._host, local)
            self._change(local, lambda _: _EMPTY)
        self._push(local, "unblock", jids)
        if removed:
            await self._reveal(user.bare, removed)

    def session_ended(self, event: SessionEnded) -> None:
        """A resource that ends gets no more pushes."""
        jid = event.session.jid
        if jid.local is None:
            return
        sessions = self._interested.get(jid.local)
        if sessions is not None:
            sessions.discard(event.session)
            if not sessions:
                del self._interested[jid.local]

    def _push(self, local: str, action: str, jids: list[str]) -> None:
        """The push of §3.3-§3.5 to each resource that requested the list."""
        sessions = self._interested.get(local)
        if not sessions:
            return
        payload = Element(action, NS_BLOCKING)
        for jid in jids:
            payload.sub("item", jid=jid)
        for session in list(sessions):
            if session.closed or not session.jid_str:
                continue
            push_id = f"blocking-push-{next(self._push_ids)}"
            iq = Element("iq", NS_CLIENT, {"type": "set", "id": push_id, "to": session.jid_str})
            iq.children.append(payload)
            self.api.deliver(session, iq)

    # -- block lists in memory -----------------------------------------------------------------
    async def items(self, local: str) -> Items:
        """The blocked JIDs of the user ``local`` of this host (from memory when loaded)."""
        cached = self._lists.get(local)
        if cached is not None:
            return cached
        epoch = self._epoch
        loaded = frozenset(await self.store.list(self._host, local))
        items = loaded or _EMPTY
        if self._epoch == epoch and local not in self._lists:
            if len(self._lists) >= CACHE_SIZE:
                self._evict()
            self._lists[local] = items
        return self._lists.get(local, items)

    def _evict(self) -> None:
        """Make room: the oldest list of a user without a session goes (the lists of users
        with one stay, for ``deliverable``; when the oldest ``EVICT_SCAN`` all have one,
        the cache grows by one, bounded by the number of users online)."""
        lists, sessions = self._lists, self.api.server.sessions
        for local in list(itertools.islice(lists, EVICT_SCAN)):
            if not sessions.resources(f"{local}@{self._host}"):
                del lists[local]
                return
            lists[local] = lists.pop(local)  # online: to the end, newest

    def _change(self, local: str, change: Callable[[Items], Items]) -> None:
        """Apply a committed change to the loaded list (if it is loaded)."""
        self._epoch += 1
        cached = self._lists.get(local)
        if cached is not None:
            self._lists[local] = change(cached) or _EMPTY

    # -- enforcement -----------------------------------------------------------------------------
    def outbound(self, out: Outbound) -> bool | Awaitable[bool | None] | None:
        """Pre-route: what a user of this host sends to a JID the user blocks (§3.3)."""
        items = self._lists.get(out.sender.local or "")
        if items is None:
            return self._outbound_loaded(out)
        return self._check_outbound(out, items) if items else None

    async def _outbound_loaded(self, out: Outbound) -> bool | None:
        return self._check_outbound(out, await self.items(out.sender.local or ""))

    def _check_outbound(self, out: Outbound, items: Items) -> bool | None:
        sender, to, stanza = out.sender, out.to, out.stanza
        if to.bare == sender.bare or _own_server(sender, to) or matching_item(items, to) is None:
            return None
        if stanza.name == "presence":
            if stanza.attrs.get("type") == "unavailable" and self.farewell_due(
                sender.local or "", str(to.bare)
            ):
                return None
            return True
        if is_error_or_result(stanza):
            return True
        reply = error_reply(stanza, StanzaError("not-acceptable", type_="cancel"))
        error = reply.find("error", NS_CLIENT)
        if error is not None:
            error.sub("blocked", NS_BLOCKING_ERRORS)
        if out.origin is not None:
            self.api.deliver(out.origin, reply)
        else:  # past the policy the refused stanza went through (this handler included)
            self.api.send(reply, policy=False)
        return True

    def inbound(self, routed: Routed) -> bool | Awaitable[bool | None] | None:
        """Host filter: what a JID that a user of this host blocks sends to the user (§3.3)."""
        local = routed.to.local
        if local is None or routed.addressing == SELF:
            return None
        items = self._lists.get(local)
        if items is None:
            return self._inbound_loaded(routed, local)
        return self._check_inbound(routed, items) if items else None

    async def _inbound_loaded(self, routed: Routed, local: str) -> bool | None:
        return self._check_inbound(routed, await self.items(local))

    @staticmethod
    def _check_inbound(routed: Routed, items: Items) -> bool | None:
        sender, to, stanza = routed.sender, routed.to, routed.stanza
        if sender.bare == to.bare or _own_server(to, sender):
            return None
        if matching_item(items, sender) is None:
            return None
        if stanza.name == "presence" or is_error_or_result(stanza):
            return True
        raise StanzaError("service-unavailable")  # the router bounces it, past the policy

    def deliverable(self, session: Session, stanza: Element) -> Element | None:
        """Outgoing: nothing from a JID the user blocks reaches the user's sessions (see the
        module docstring for what passes)."""
        user = session.jid
        items = self._lists.get(user.local or "")
        raw = stanza.attrs.get("from")
        if not items or raw is None:  # None: not loaded, so nothing was sent yet (outbound)
            return stanza
        kind = stanza.attrs.get("type")
        if kind == "error" or (kind == "unavailable" and stanza.name == "presence"):
            return stanza
        try:
            sender = JID.parse(raw)
        except JIDError:
            return stanza
        if sender.bare == user.bare or _own_server(user, sender):
            return stanza
        return None if matching_item(items, sender) is not None else stanza

    def farewell_due(self, local: str, contact: str) -> bool:
        """Whether one more unavailable presence from ``local`` to ``contact`` (a bare JID)
        may pass; it is counted."""
        farewell = self._farewells.get((local, contact))
        if farewell is None or farewell.left <= 0 or farewell.deadline < time.monotonic():
            return False
        farewell.left -= 1
        return True

    # -- presence on block and unblock (§3.3, §3.4) --------------------------------------------
    async def _hide(self, user: JID, added: list[str], before: Items) -> None:
        """Unavailable presence to newly blocked contacts, and from them to the user (contacts
        blocked ``before`` already saw the user offline and were hidden then)."""
        own = [s for s in self.api.server.sessions.resources(str(user)) if s.presence is not None]
        roster = await self._roster(user) if own else None
        if roster is None:
            return  # the user is unavailable (or there are no rosters): nothing to hide
        presence = self._presence()
        now = time.monotonic()
        self._farewells = {k: f for k, f in self._farewells.items() if f.deadline > now}
        for target, _ in affected(roster, added, SEES_USER):
            if presence is not None and matching_item(before, target) is None:
                key = (user.local or "", str(target.bare))
                farewell = self._farewells.setdefault(key, Farewell(now))
                farewell.deadline = now + FAREWELL_SECONDS
                farewell.left += len(own)  # one unavailable per available resource
                presence.send_unavailable(user, target)
        for target, item in affected(roster, added, USER_SEES):
            if matching_item(before, target) is None:
                self._hide_contact(target, item, own)

    def _hide_contact(self, contact: JID, item: str, own: list[Session]) -> None:
        """Unavailable presence from the contact's available local resources that ``item``
        blocks to the user's available resources (the §3.3 SHOULD; remote contacts need
        what the server received from them, which s2s will know)."""
        for session in self.api.server.sessions.resources(str(contact.bare)):
            if session.presence is None or session.jid is None:
                continue
            if matching_item(frozenset((item,)), session.jid) is None:
                continue
            for mine in own:
                gone = Element("presence", NS_CLIENT, {"type": "unavailable"})
                gone.attrs["from"] = session.jid_str
                gone.attrs["to"] = mine.jid_str
                self.api.deliver(mine, gone)

    async def _reveal(self, user: JID, removed: list[str]) -> None:
        """Current presence to unblocked contacts that may see it; probes to those the user
        is subscribed to, so that their presence shows again."""
        roster = await self._roster(user)
        if roster is None:
            return
        still = await self.items(user.local or "")
        presence = self._presence()
        if presence is not None:
            for target, _ in affected(roster, removed, SEES_USER):
                if matching_item(still, target) is None:
                    presence.send_current_presence(user, target)
        for target, _ in affected(roster, removed, USER_SEES):
            if matching_item(still, target) is None:
                probe = Element("presence", NS_CLIENT, {"type": "probe"})
                probe.attrs["from"] = str(user)
                probe.attrs["to"] = str(target.bare)
                self.api.send(probe)

    async def _roster(self, user: JID) -> Roster | None:
        try:
            rosters = self.api.service(RosterService)
        except LookupError:
            return None  # no roster module: no subscriptions, nobody to tell
        return await rosters.roster(user)

    def _presence(self) -> PresenceService | None:
        try:
            return self.api.service(PresenceService)
        except LookupError:
            return None


def affected(
    roster: Roster, items: Iterable[str], subscriptions: frozenset[str]
) -> list[tuple[JID, str]]:
    """(address, blocking item) for the roster contacts with one of ``subscriptions`` that
    ``items`` match: a full-JID item gives that full JID, a bare or domain item the contacts'
    bare JIDs (a domain/resource item matches no account)."""
    contacts = {
        JID.parse(jid) for jid, item in roster.items.items() if item.subscription in subscriptions
    }
    found: dict[JID, str] = {}  # each address once, with the first item that matched it
    for raw in items:
        blocked = JID.parse(raw)
        if blocked.local is not None:
            hits = [blocked] if blocked.bare in contacts else []
        else:
            hits = [c for c in contacts if blocked.resource is None and c.domain == blocked.domain]
        for hit in hits:
            found.setdefault(hit, raw)
    return list(found.items())
