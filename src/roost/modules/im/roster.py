"""Rosters: the jabber:iq:roster protocol, get, set, remove and versioning (RFC 6121 §2).

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

The rosters themselves (cache, locks, storage, pushes) are the host's roster service,
``Rosters`` in ``rosters.py``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Final

from roost.core.hooks import LATE, SessionEnded
from roost.core.module import Module, ModuleAPI, Spec
from roost.core.stanza import BARE, SELF, IqRequest
from roost.errors import StanzaError
from roost.jid import JID, JIDError
from roost.modules.api import RosterService
from roost.modules.im.rosters import Rosters
from roost.modules.im.stanzas import presence, route_all
from roost.storage.roster import RosterChange, RosterItem
from roost.storage.roster import roster_item_element as item_element
from roost.xml.element import Element
from roost.xml.ns import NS_ROSTER, NS_ROSTER_VER

if TYPE_CHECKING:
    from roost.core.session import Session
    from roost.stream.c2s import C2SStream

MAX_TEXT_BYTES: Final = 1023  # longest item name or group name accepted (§2.3.3)


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
        api.hook(SessionEnded, self.rosters.ended, priority=LATE)  # after presence's broadcast

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
