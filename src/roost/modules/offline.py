"""Offline messages: stored while a user has no available resource, delivered at next login.

Implements XEP-0160 (Best Practices for Handling Offline Messages) §3 with XEP-0203
(Delayed Delivery) stamps, for the message module's RFC 6121 §8.5.2.2.1 "store offline":

- What is stored: chat and normal messages only (never headline, groupchat or error: the
  message module calls ``OfflineService.store`` for those two types only, XEP-0160 §3).
- How: a copy with ``<delay xmlns='urn:xmpp:delay' from='domain' stamp='...'>Offline
  Storage</delay>`` (XEP-0203 §3, XEP-0082 DateTime in UTC, the example of XEP-0160 §3) is
  serialized and pushed to ``storage.offline``. The push is committed before ``store``
  returns, and the message handler awaits it, so it is committed before the sender's next
  stanza is processed (RFC 6120 §10.1) and before any later stream-management ack
  (docs/architecture.md).
- Quota: ``[limits].offline_messages`` per user (default 1000); a message past it is refused
  (``store`` returns False and the sender gets ``service-unavailable``).
- Delivery: at the user's initial presence (``InitialPresence``, RFC 6121 §4.2) when its
  priority is non-negative (§8.5.2.1.1: a negative priority never receives bare-JID
  messages): fetch, send to that session (``api.deliver``: its outgoing chain, where the
  blocking module drops what comes from a JID the user blocked since, XEP-0191 §3.3), then
  delete what was sent — at least once, so a crash between send and delete delivers those
  messages again. Deliveries of one user run
  one after the other, so two resources logging in together never both get a message.
  A message stored while the user was coming online (the push still running when the
  delivery fetched) is delivered as soon as its push is committed.
- Expiry: messages older than ``[limits].offline_expire_after`` (30 days) are deleted at
  start and then hourly (docs/configuration.md [limits]).
- Discovery: the host advertises ``msgoffline`` (XEP-0160 §6, registrar considerations).
  Flexible offline retrieval (XEP-0013) is not offered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Final, Protocol

from roost.core.module import Module, ModuleAPI, Spec
from roost.modules.api import InitialPresence
from roost.storage.offline import OfflineStore
from roost.xml.ns import FEATURE_MSGOFFLINE, NS_DELAY
from roost.xml.parser import parse_fragment
from roost.xml.serializer import serialize

if TYPE_CHECKING:
    from roost.core.session import Session
    from roost.jid import JID
    from roost.xml.element import Element

log = logging.getLogger(__name__)

EXPIRE_INTERVAL: Final = 3600.0  # seconds between expiry runs


class OfflineService(Protocol):
    """Offline storage for the message module (provided by the ``offline`` module)."""

    async def store(self, user: JID, stanza: Element) -> bool:
        """Store a chat or normal message for the account ``user`` (bare JID), committed
        when this returns; False when the user's quota is full (nothing was stored)."""
        ...


def delay_stamp(when: float) -> str:
    """A XEP-0082 DateTime in UTC, as XEP-0203 §3 wants for ``stamp``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def with_delay(stanza: Element, user: JID, domain: str, when: float) -> Element:
    """A copy of the message to store: addressed (no 'to' means the user's bare JID) and
    stamped with ``<delay/>`` (XEP-0203 §3); the original is not changed."""
    stored = stanza.shallow_copy()
    stored.attrs.setdefault("to", str(user))
    stored.sub("delay", NS_DELAY, "Offline Storage", **{"from": domain, "stamp": delay_stamp(when)})
    return stored


class Offline(Module):
    """Store messages for offline users and deliver them at their next initial presence."""

    name = "offline"
    implements = (
        Spec("XEP-0160", "1.0.1", note="chat and normal messages, per-user quota, 30-day expiry"),
        Spec("XEP-0203", "2.0", note="<delay/> on stored messages"),
    )

    def setup(self, api: ModuleAPI) -> None:
        limits = api.server.config.limits
        self.quota = limits.offline_messages
        self.expire_after = limits.offline_expire_after
        self.messages = api.store(OfflineStore)
        self.deliveries: dict[str, asyncio.Task[None]] = {}  # bare JID → the latest delivery
        api.provide(OfflineService, self)
        api.feature(FEATURE_MSGOFFLINE)
        api.hook(InitialPresence, self.initial_presence)
        if api.host.name == min(api.server.hosts):  # expiry covers every host: run it once
            api.spawn(self.expire())
            api.every(EXPIRE_INTERVAL, self.expire)

    # -- storing -------------------------------------------------------------------------------
    async def store(self, user: JID, stanza: Element) -> bool:
        """See ``OfflineService.store``."""
        domain = self.api.host.name
        data = serialize(with_delay(stanza, user, domain, time.time()))
        stored = await self.messages.push(domain, user.local or "", data, limit=self.quota)
        if stored:
            self.deliver_if_online(user)
        return stored

    def deliver_if_online(self, user: JID) -> None:
        """The user came online while the push ran: deliver to its most available session."""
        online = [
            s
            for s in self.api.server.sessions.resources(str(user))
            if s.presence is not None and s.priority >= 0
        ]
        if online:
            self.deliver(max(online, key=lambda s: s.priority))

    # -- delivering ----------------------------------------------------------------------------
    def initial_presence(self, event: InitialPresence) -> None:
        """Deliver the stored messages to a session that became available (priority >= 0)."""
        session = event.session
        if session.priority < 0:
            return
        self.deliver(session)

    def deliver(self, session: Session) -> None:
        """Start a delivery to ``session`` after any earlier one of the same user."""
        assert session.jid is not None
        user = str(session.jid.bare)
        previous = self.deliveries.get(user)
        task = self.api.spawn(self.deliver_after(previous, session))
        self.deliveries[user] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self.deliveries.get(user) is done:
                del self.deliveries[user]

        task.add_done_callback(forget)

    async def deliver_after(self, previous: asyncio.Task[None] | None, session: Session) -> None:
        """Wait for the user's previous delivery, then fetch, send and delete."""
        if previous is not None:
            await asyncio.wait([previous])
        jid = session.jid
        if session.closed:
            return
        store = self.messages
        domain, user = jid.domain, jid.local or ""
        sent: list[int] = []
        for message_id, data in await store.fetch(domain, user):
            if session.closed:
                break
            try:
                stanza = parse_fragment(data)
            except ValueError:
                log.error("offline message %d of %s is not XML; it stays stored", message_id, jid)
                continue
            self.api.deliver(session, stanza, data)
            sent.append(message_id)
        if sent:
            await store.delete(domain, user, sent)
            log.debug("delivered %d offline messages to %s", len(sent), session.jid_str)

    # -- expiry --------------------------------------------------------------------------------
    async def expire(self) -> None:
        """Delete messages older than the expiry age."""
        removed = await self.messages.expire(time.time() - self.expire_after)
        if removed:
            log.info("expired %d offline messages", removed)
