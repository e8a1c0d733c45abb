"""Presence: broadcast, probes, directed presence and subscriptions (RFC 6121 §3, §4, App. A).

Implements RFC 6121:
- §4.2 initial presence: ``OutgoingPresence`` is fired (modules add payloads), the stanza and its
  priority (-128..127, clamped; not a number: 0) are kept on the session, reflected to the
  user's available resources including the sender (§4.2.2), the other resources' presence is
  sent to the new one (as Prosody), then it goes to the contacts with a 'from' or 'both'
  subscription and probes go from the user's bare JID to those with 'to' or 'both' (§4.3.1);
  held subscription requests are redelivered to that session (§3.1.3) and ``InitialPresence``
  is fired;
- §4.4 updates: the same broadcast, without probes;
- §4.5 unavailable: to the same audience and to the recipients of directed presence (§4.6.3),
  also when the session ends for any reason (``SessionEnded``: close, TCP cut, conflict,
  timeout, shutdown);
- §4.3.2 probes: a contact with 'from'/'both' gets the last presence of each available
  resource, or, with none, the last unavailable presence seen since start (option 1; Prosody's
  bare unavailable when there is none); a contact on the roster without 'from' gets
  "unsubscribed" (the SHOULD: it repairs rosters out of sync); anyone else, or a probe to an
  unknown account, gets nothing (§8.5.1 allows it; nothing is leaked);
- §4.6 directed presence is delivered; recipients not subscribed to the user are remembered
  per session (unavailable directed presence forgets them);
- §8.5.2.1.2, §8.5.2.2.2, §8.5.3.2.2: available, unavailable and error presence to an account
  reach its available resources (none: dropped); to a bound full JID the router delivers it;
  to an unbound full JID it is dropped;
- §3 with Appendix A (tables in ``roost.modules.subscription``): outbound subscription stanzas
  change the sender's roster (pushes), are stamped with the sender's bare JID (§3.1.2) and
  routed when the table says so; inbound ones change the recipient's roster, are delivered to
  its available resources when the table says so, and an unanswered request is stored and
  redelivered at each initial presence (§3.1.3); pre-approval (§3.4) is advertised with the
  stream feature ``urn:xmpp:features:pre-approval``. A subscription request to an unknown
  account is ignored (§8.5.1, option a: does not reveal which accounts exist).

Everything sent to other accounts goes through the router (``route_all``), so policy such as
blocking sees it; presence to a user's own resources is delivered to their sessions
(``api.deliver``). Work that outlives a hook or a service call (the §4.5 farewell of a session
that ended) runs in a tracked task (``api.spawn``), which unload awaits.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Final

from roost.core.hooks import SessionEnded
from roost.core.module import Module, ModuleAPI, Spec
from roost.core.router import deliver_all
from roost.core.stanza import BARE, FULL, SELF, Routed
from roost.errors import StanzaError
from roost.jid import JID
from roost.modules.api import InitialPresence, OutgoingPresence, PresenceService
from roost.modules.im import subscription
from roost.modules.im.rosters import RosterEntry, Rosters
from roost.modules.im.stanzas import Routing, presence, route_all, with_to
from roost.xml.element import Element
from roost.xml.ns import NS_PRE_APPROVAL
from roost.xml.parser import parse_fragment
from roost.xml.serializer import serialize

if TYPE_CHECKING:
    from roost.core.session import Session
    from roost.stream.c2s import C2SStream

SEES_USER: Final = frozenset({"from", "both"})  # contacts that get the user's presence
USER_SEES: Final = frozenset({"to", "both"})  # contacts the user probes
LAST_UNAVAILABLE_KEPT: Final = 10000  # accounts whose last unavailable presence is kept


def priority_of(stanza: Element) -> int:
    """The ``<priority/>`` of a presence (RFC 6121 §4.7.2.3), clamped to -128..127."""
    text = stanza.find_text("priority")
    try:
        value = int(text) if text else 0
    except ValueError:
        return 0
    return max(-128, min(127, value))


class Presence(Module, PresenceService):
    """Presence broadcast, probes, directed presence and the subscription state machine."""

    name = "presence"
    depends = ("roster",)
    implements = (Spec("RFC 6121", "§3, §4, Appendix A", note="with pre-approval (§3.4)"),)

    def setup(self, api: ModuleAPI) -> None:
        self.rosters = api.service(Rosters)
        self.sessions = api.server.sessions
        self.router = api.server.router
        self.hooks = api.host.hooks
        self._directed: dict[Session, set[str]] = {}
        self._last_unavailable: dict[str, Element] = {}
        api.on("presence", SELF, self.own_presence)
        api.on("presence", BARE, self.to_account)
        api.on("presence", FULL, self.to_resource)
        api.hook(SessionEnded, self.ended)
        api.stream_feature(self.feature)
        api.provide(PresenceService, self)

    def feature(self, stream: C2SStream) -> Element:
        """``<sub xmlns='urn:xmpp:features:pre-approval'/>`` (§3.4)."""
        return Element("sub", NS_PRE_APPROVAL)

    # -- the user's own presence (§4.2, §4.4, §4.5) ---------------------------------------------
    def own_presence(self, routed: Routed) -> bool | Awaitable[bool]:
        """Presence without 'to' (or to the user's own bare JID) from a session."""
        session, stanza = routed.origin, routed.stanza
        kind = stanza.attrs.get("type")
        if session is None or session.jid is None:
            return True
        if "to" in stanza.attrs:  # to the user's own bare JID
            if kind is None or kind == "unavailable":
                self._deliver(str(session.jid.bare), stanza)
            return True  # subscriptions and probes to oneself mean nothing (Prosody ignores them)
        if kind is None:
            return _handled(self._available(session, stanza))
        if kind == "unavailable":
            return _handled(self._unavailable(session, stanza))
        return True

    def _available(self, session: Session, stanza: Element) -> Awaitable[None] | None:
        assert session.jid is not None
        initial = session.presence is None
        self.hooks.fire(OutgoingPresence(session, stanza))
        session.presence = stanza
        session.priority = priority_of(stanza)
        for other in self._available_sessions(session.jid.bare):
            self.api.deliver(other, with_to(stanza, other.jid_str))
            if initial and other is not session and other.presence is not None:
                self.api.deliver(session, with_to(other.presence, session.jid_str))
        entry = self.rosters.cached(session.jid)
        if entry is None:
            return self._broadcast_later(session, stanza, initial)
        return self._broadcast(session, stanza, initial, entry)

    async def _broadcast_later(self, session: Session, stanza: Element, initial: bool) -> None:
        assert session.jid is not None
        entry = await self.rosters.entry(session.jid)
        if session.presence is stanza:  # not ended or replaced meanwhile
            pending = self._broadcast(session, stanza, initial, entry)
            if pending is not None:
                await pending

    def _broadcast(
        self, session: Session, stanza: Element, initial: bool, entry: RosterEntry
    ) -> Awaitable[None] | None:
        """To the contacts with 'from'/'both'; on initial presence, probes and what follows."""
        items = entry.items
        stanzas = [
            with_to(stanza, jid) for jid, item in items.items() if item.subscription in SEES_USER
        ]
        requests: list[bytes] = []
        if initial:
            assert session.jid is not None
            probe = presence("probe", str(session.jid.bare))
            stanzas.extend(
                with_to(probe, jid) for jid, item in items.items() if item.subscription in USER_SEES
            )
            requests = list(entry.pending.values())
        pending = route_all(self.router, stanzas, lambda: session.presence is stanza)
        if pending is None:
            self._after_broadcast(session, initial, requests)
            return None
        return self._finish_broadcast(pending, session, initial, requests)

    async def _finish_broadcast(
        self, pending: Awaitable[None], session: Session, initial: bool, requests: list[bytes]
    ) -> None:
        await pending
        self._after_broadcast(session, initial, requests)

    def _after_broadcast(self, session: Session, initial: bool, requests: list[bytes]) -> None:
        if not initial or session.closed or session.presence is None:
            return
        for request in requests:  # §3.1.3: held subscription requests
            self.api.deliver(session, parse_fragment(request), request)
        self.api.fire(InitialPresence(session))

    def _unavailable(self, session: Session, stanza: Element) -> Routing | None:
        assert session.jid is not None
        was_available = session.presence is not None
        session.presence = None
        self._remember(session.jid.bare, stanza)
        self.api.deliver(session, with_to(stanza, session.jid_str))
        if was_available:
            for other in self._available_sessions(session.jid.bare):
                self.api.deliver(other, with_to(stanza, other.jid_str))
        directed = self._directed.pop(session, None)
        return self._farewell(session.jid.bare, stanza, was_available, directed)

    def ended(self, event: SessionEnded) -> None:
        """A session that ends goes unavailable (§4.5, §4.6.3), whatever the reason."""
        session = event.session
        directed = self._directed.pop(session, None)
        was_available = session.presence is not None
        session.presence = None
        if not was_available and not directed:
            return
        user = session.jid.bare
        stanza = presence("unavailable", session.jid_str)
        if was_available:
            self._remember(user, stanza)
        for other in self._available_sessions(user):
            self.api.deliver(other, with_to(stanza, other.jid_str))
        self._spawn(self._farewell(user, stanza, was_available, directed))

    def _farewell(
        self, user: JID, stanza: Element, was_available: bool, directed: set[str] | None
    ) -> Routing | None:
        """Unavailable to the contacts that saw the user and to directed-presence recipients."""
        entry = self.rosters.cached(user)
        if entry is None and was_available:
            return self._farewell_later(user, stanza, directed)
        targets: list[str] = []
        if was_available and entry is not None:
            targets = [jid for jid, item in entry.items.items() if item.subscription in SEES_USER]
        if directed:
            seen = set(targets)
            targets.extend(jid for jid in directed if jid.partition("/")[0] not in seen)
        return route_all(self.router, [with_to(stanza, jid) for jid in targets])

    async def _farewell_later(self, user: JID, stanza: Element, directed: set[str] | None) -> None:
        entry = await self.rosters.entry(user)
        targets = [jid for jid, item in entry.items.items() if item.subscription in SEES_USER]
        seen = set(targets)
        targets.extend(jid for jid in directed or () if jid.partition("/")[0] not in seen)
        await self._route([with_to(stanza, jid) for jid in targets])

    def _remember(self, user: JID, stanza: Element) -> None:
        kept = self._last_unavailable
        key = str(user)
        kept.pop(key, None)
        kept[key] = stanza
        if len(kept) > LAST_UNAVAILABLE_KEPT:
            del kept[next(iter(kept))]

    # -- presence to an account or a resource ---------------------------------------------------
    def to_account(self, routed: Routed) -> bool | Awaitable[bool]:
        """Presence to a bare JID (or, from the router's fallback, to an unbound full JID)."""
        kind = routed.stanza.attrs.get("type")
        if kind in subscription.SUBSCRIPTION_TYPES:
            if routed.origin is not None:
                return self._outbound_subscription(routed, kind)
            return self._inbound_subscription(routed, kind)
        if kind == "probe":
            return _handled(self._probe(routed))
        if kind is None or kind == "unavailable" or kind == "error":
            if routed.origin is not None:
                self._track(routed)
            if routed.to.resource is None:
                self._deliver(str(routed.to), routed.stanza)
            return True
        if routed.origin is not None:
            raise StanzaError("bad-request", "unknown presence type")
        return True

    def to_resource(self, routed: Routed) -> bool | Awaitable[bool] | None:
        """Presence to a full JID: subscriptions and probes are for the account (§3.1.3,
        §4.3); directed presence is noted, then the router delivers it."""
        kind = routed.stanza.attrs.get("type")
        if kind in subscription.SUBSCRIPTION_TYPES or kind == "probe":
            routed.to = routed.to.bare
            return self.to_account(routed)
        if routed.origin is not None:
            self._track(routed)
        return None

    def _track(self, routed: Routed) -> None:
        """§4.6: remember who got directed available presence from a session."""
        session, to = routed.origin, routed.to
        if session is None or to.bare == session.jid.bare:
            return
        kind = routed.stanza.attrs.get("type")
        if kind is None:
            entry = self.rosters.cached(session.jid)
            item = None if entry is None else entry.items.get(str(to.bare))
            if item is None or item.subscription not in SEES_USER:
                self._directed.setdefault(session, set()).add(str(to))
        elif kind == "unavailable":
            recipients = self._directed.get(session)
            if recipients is not None:
                recipients.discard(str(to))

    def _deliver(self, bare: str, stanza: Element) -> None:
        """To every available resource of an account (§8.5.2.1.2); none: dropped."""
        targets = self._available_sessions(bare)
        if targets:
            deliver_all(self.router, targets, stanza, serialize(stanza))

    # -- probes (§4.3.2) ------------------------------------------------------------------------
    def _probe(self, routed: Routed) -> Awaitable[None] | None:
        user, prober = routed.to.bare, routed.sender
        if prober.bare == user:
            return None
        entry = self.rosters.cached(user)
        if entry is None:
            return self._probe_later(user, prober)
        return self._answer_probe(user, prober, entry)

    async def _probe_later(self, user: JID, prober: JID) -> None:
        pending = self._answer_probe(user, prober, await self.rosters.entry(user))
        if pending is not None:
            await pending

    def _answer_probe(self, user: JID, prober: JID, entry: RosterEntry) -> Awaitable[None] | None:
        item = entry.items.get(str(prober.bare))
        if item is None:
            return None
        to = str(prober)
        if item.subscription not in SEES_USER:
            stanzas = [presence("unsubscribed", str(user), str(prober.bare))]
        else:
            stanzas = self._current(user, to)
            if not stanzas:
                last = self._last_unavailable.get(str(user))
                stanzas = [
                    presence("unavailable", str(user), to) if last is None else with_to(last, to)
                ]
        return route_all(self.router, stanzas)

    # -- subscriptions (§3, Appendix A) ---------------------------------------------------------
    async def _outbound_subscription(self, routed: Routed, kind: str) -> bool:
        user, contact = routed.sender.bare, str(routed.to.bare)
        stamped = routed.stanza.shallow_copy()  # §3.1.2: from the bare JID, to the bare JID
        stamped.attrs["from"] = str(user)
        stamped.attrs["to"] = contact
        async with self.rosters.locked(user) as entry:
            outcome = subscription.outbound(entry.state(contact), kind)
            await self.rosters.apply(user, entry, contact, outcome.state, None)
        stanzas = [stamped] if outcome.forward else []
        await self._route(stanzas + self._consequences(user, contact, outcome))
        return True

    async def _inbound_subscription(self, routed: Routed, kind: str) -> bool:
        user, contact = routed.to.bare, str(routed.sender.bare)
        if str(user) == contact:
            return True
        if kind == "subscribe" and not self.sessions.resources(str(user)):
            accounts = self.api.server.storage.accounts
            if not await accounts.exists(user.domain, user.local or ""):
                return True  # §8.5.1: no such account, silently ignored
        stamped = routed.stanza.shallow_copy()
        stamped.attrs["from"] = contact
        stamped.attrs["to"] = str(user)
        data = serialize(stamped)
        async with self.rosters.locked(user) as entry:
            outcome = subscription.inbound(entry.state(contact), kind)
            await self.rosters.apply(user, entry, contact, outcome.state, data)
        if outcome.forward:
            deliver_all(self.router, self._available_sessions(user), stamped, data)
        replies = [] if outcome.reply is None else [presence(outcome.reply, str(user), contact)]
        await self._route(replies + self._consequences(user, contact, outcome))
        return True

    def _consequences(
        self, user: JID, contact: str, outcome: subscription.Outcome
    ) -> list[Element]:
        if outcome.send_presence:
            return self._current(user, contact)
        if outcome.send_unavailable:
            return self._gone(user, contact)
        return []

    # -- PresenceService ------------------------------------------------------------------------
    def send_current_presence(self, user: JID, to: JID) -> None:
        """The current presence of each available resource of ``user`` to ``to``."""
        self._spawn(route_all(self.router, self._current(user.bare, str(to))))

    def send_unavailable(self, user: JID, to: JID) -> None:
        """Unavailable presence from each available resource of ``user`` to ``to``."""
        self._spawn(route_all(self.router, self._gone(user.bare, str(to))))

    # -- helpers --------------------------------------------------------------------------------
    def _available_sessions(self, user: JID | str) -> list[Session]:
        return [s for s in self.sessions.resources(str(user)) if s.presence is not None]

    def _current(self, user: JID, to: str) -> list[Element]:
        found = self._available_sessions(user)
        return [with_to(s.presence, to) for s in found if s.presence is not None]

    def _gone(self, user: JID, to: str) -> list[Element]:
        found = self._available_sessions(user)
        return [presence("unavailable", s.jid_str, to) for s in found]

    async def _route(self, stanzas: list[Element]) -> None:
        pending = route_all(self.router, stanzas)
        if pending is not None:
            await pending

    def _spawn(self, work: Routing | None) -> None:
        """Finish routing in a tracked task (from a hook or a service call)."""
        if work is not None:
            self.api.spawn(work)


def _handled(pending: Awaitable[None] | None) -> bool | Awaitable[bool]:
    """A stanza handler's answer: handled now, or once ``pending`` is done."""
    return True if pending is None else _true_after(pending)


async def _true_after(pending: Awaitable[None]) -> bool:
    await pending
    return True
