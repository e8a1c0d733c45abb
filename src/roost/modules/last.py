"""Last Activity (XEP-0012 2.0): server uptime and when an account was last online.

- §5 the server (``domain``): ``seconds`` is the uptime, no text.
- §3 an account (``user@domain``), answered by the server on the user's behalf:
  - who may ask (§3, §8): the user and the contacts allowed to see the user's presence, i.e.
    with subscription ``from`` or ``both`` on the user's roster; anyone else gets
    ``forbidden``. A query about
    an account that does not exist is ``service-unavailable`` first (RFC 6121 §8.5.1 for an
    iq to a missing account; existence is learnt the same way from messages, so ``forbidden``
    would hide nothing).
  - the answer: ``seconds='0'`` while the user has an available resource (§3); otherwise the
    seconds since the user's last logout and, as text, the ``<status/>`` of the last
    unavailable presence (§3). With nothing recorded (never online since this module ran) the
    answer is ``service-unavailable`` (ejabberd's "no info about last activity found";
    Prosody answers 0 seconds, which §3 reserves for users who are online).
  - what "logout" means: the moment the account's last available resource goes, by an
    unavailable presence or by its session ending (any reason). It is recorded in the
    last-activity store (``roost.storage.last``), so it survives restarts; the write runs
    in a tracked task when a session ends (``api.spawn``: unload awaits it).
- §4 a full JID (``user@domain/resource``): the client answers (the router delivers it), but
  only when the requester may see the user's presence (§4, §8: the server MUST NOT deliver the
  query otherwise, and answers ``forbidden``); a host filter checks that before routing.
- §6: ``jabber:iq:last`` is advertised by the host and by accounts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Final

from roost.core.hooks import ARCHIVE, SessionEnded
from roost.core.module import Module, ModuleAPI, Spec
from roost.core.stanza import BARE, FULL, HOST, SELF, IqRequest, Routed
from roost.errors import StanzaError
from roost.modules.api import RosterService
from roost.storage.last import LastActivityStore, Logout
from roost.xml.element import Element
from roost.xml.ns import NS_LAST

if TYPE_CHECKING:
    from roost.core.session import Session
    from roost.jid import JID

log = logging.getLogger(__name__)

SUBSCRIBED: Final = ("from", "both")  # the contact may see the user's presence


def last_query(seconds: float, status: str = "") -> Element:
    """``<query xmlns='jabber:iq:last' seconds='N'>status</query>``."""
    query = Element("query", NS_LAST, {"seconds": str(max(0, int(seconds)))})
    return query.add_text(status)


class LastActivity(Module):
    """Answer jabber:iq:last for the server and its accounts; record logouts."""

    name = "last"
    depends = ("roster",)
    implements = (
        Spec("XEP-0012", "2.0", note="to subscribers only; logouts kept across restarts"),
    )

    def setup(self, api: ModuleAPI) -> None:
        self.logouts = api.store(LastActivityStore)
        api.feature(NS_LAST)
        api.feature(NS_LAST, account=True)
        api.on_iq("get", HOST, NS_LAST, "query", self.uptime)
        api.on_iq("get", BARE, NS_LAST, "query", self.last_logout)  # SELF falls back to it
        api.filter(self.guard_full_jid)
        # before the presence module (DEFAULT) forgets that the session was available
        api.on("presence", SELF, self.unavailable, ARCHIVE)
        api.hook(SessionEnded, self.ended, ARCHIVE)

    # -- queries ------------------------------------------------------------------------------
    def uptime(self, request: IqRequest) -> Element:
        """The server's uptime (§5)."""
        return last_query(self.api.server.uptime())

    async def last_logout(self, request: IqRequest) -> Element:
        """0 while online, else the time since the last logout and its status (§3)."""
        user = request.to.bare
        if request.sender.bare != user:
            accounts = self.api.server.storage.accounts
            if not await accounts.exists(user.domain, user.local or ""):
                raise StanzaError("service-unavailable")
            if not await self.may_see_presence(user, request.sender):
                raise StanzaError("forbidden", "only subscribers may see the last activity")
        if self.available_resources(str(user)):
            return last_query(0)
        logout = await self.logouts.get(user.domain, user.local or "")
        if logout is None:
            raise StanzaError("service-unavailable", "no last activity recorded")
        return last_query(time.time() - logout.time, logout.status)

    async def may_see_presence(self, user: JID, requester: JID) -> bool:
        """Whether ``requester`` has a subscription to ``user``'s presence."""
        roster = self.api.service(RosterService)
        return await roster.subscription(user, requester) in SUBSCRIBED

    def guard_full_jid(self, routed: Routed) -> Awaitable[bool] | None:
        """Keep last-activity queries to a full JID from those who may not see presence (§4)."""
        if routed.addressing != FULL:
            return None
        stanza = routed.stanza
        if stanza.name != "iq" or stanza.attrs.get("type") != "get":
            return None
        payload = stanza.first_element()
        if payload is None or payload.xmlns != NS_LAST or routed.sender.bare == routed.to.bare:
            return None
        return self.check_full_jid(routed)

    async def check_full_jid(self, routed: Routed) -> bool:
        """Refuse with forbidden unless subscribed; False lets the iq go on to the client."""
        if not await self.may_see_presence(routed.to.bare, routed.sender):
            raise StanzaError("forbidden", "only subscribers may see the last activity")
        return False

    # -- recording logouts --------------------------------------------------------------------
    def available_resources(self, bare: str, but: Session | None = None) -> bool:
        """Whether the account has an available resource other than ``but``."""
        return any(
            s is not but and s.presence is not None
            for s in self.api.server.sessions.resources(bare)
        )

    def unavailable(self, routed: Routed) -> Awaitable[bool] | None:
        """An unavailable broadcast from the account's last available resource is a logout."""
        session, stanza = routed.origin, routed.stanza
        if session is None or session.closed or session.jid is None:
            return None
        if "to" in stanza.attrs or stanza.attrs.get("type") != "unavailable":
            return None
        if session.presence is None or self.available_resources(str(session.jid.bare), session):
            return None
        return self.record(session.jid.bare, stanza.find_text("status") or "")

    def ended(self, event: SessionEnded) -> None:
        """A session that ends while available, the account's last one, is a logout."""
        session = event.session
        jid = session.jid
        if session.presence is None:
            return
        if not self.available_resources(str(jid.bare), session):
            self.api.spawn(self.record(jid.bare, ""))

    async def record(self, user: JID, status: str) -> bool:
        """Store the logout time and status; False lets the presence go on (also when
        storage fails: the presence matters more than the record)."""
        try:
            await self.logouts.set(user.domain, user.local or "", Logout(time.time(), status))
        except Exception:
            log.exception("recording the logout of %s failed", user)
        return False
