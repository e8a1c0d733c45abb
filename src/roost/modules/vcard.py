"""vCards of accounts (XEP-0054 vcard-temp) and their avatar hash in presence (XEP-0153).

XEP-0054 1.2, answered by the server on the account's behalf:
- §3.1 own vCard (no 'to', or the own bare JID): the stored one; none stored → an empty
  ``<vCard/>`` (§3.1 allows it or ``item-not-found``; Prosody's default ``mod_vcard_legacy``
  answers the empty vCard).
- §3.2 set: only one's own, stored as serialized bytes in the key-value store ``vcard``. A
  vCard larger than ``[limits].vcard_size`` (default 64 KiB) serialized is refused with
  ``policy-violation``
  (Metronome's ``vcard_max_size`` answer; Prosody has no limit but the stanza size). A set to
  anyone else is ``forbidden`` (§3.2: forbidden or not-allowed; docs/configuration.md [limits]).
- §3.3 another user's vCard (their bare JID): anyone may read it; no vCard and no such account
  both give ``service-unavailable`` (§3.3 wants one condition for both, to prevent directory
  harvesting; RFC 6121 §8.5.1 wants service-unavailable for a missing account).
- An iq to a full JID is the client's business: the router delivers it.
- §4: ``vcard-temp`` is advertised by the host and by accounts.

XEP-0153 1.1 (vCard-based avatars):
- The hash is the SHA-1 (hex) of the decoded PHOTO/BINVAL (§3.1; whitespace ignored, §4.6);
  no photo (or an undecodable one) is the empty hash.
- Broadcast presence (``OutgoingPresence``, available only): with no ``<x
  xmlns='vcard-temp:x:update'/>`` the server adds one with ``<photo>hash</photo>`` (an empty
  ``<photo/>`` when there is no photo: §4.1 rule 3); an ``<x/>`` without ``<photo/>`` (a client
  "not yet ready", §4.1 rule 2) gets the photo added; a client's own ``<photo/>`` is never
  touched. This is Prosody's ``mod_vcard_legacy``; it keeps resources whose client knows
  nothing of XEP-0153 from making the others stop advertising (§4.3 rule 1).
- The hash must be known before the first broadcast: a presence handler running before the
  presence module (ARCHIVE priority) loads it for an account not yet cached, and the session
  waits for that (RFC 6120 §10.1). Hashes are cached per online account.
- After a vCard set that changes the hash, the server re-broadcasts the current presence of
  each resource whose photo the server had added (§3.1 leaves this to clients, which still do
  it for the resources they run; Prosody does not do it). Presence a client tagged itself is
  left to that client.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Final

from roost.core.hooks import ARCHIVE, SessionEnded
from roost.core.module import Module, ModuleAPI, Spec
from roost.core.stanza import BARE, SELF, IqRequest, Routed
from roost.errors import StanzaError
from roost.modules.api import OutgoingPresence
from roost.storage.kv import VCARD_KEY, VCARD_STORE
from roost.xml.element import Element
from roost.xml.ns import NS_VCARD, NS_VCARD_UPDATE
from roost.xml.parser import parse_fragment
from roost.xml.serializer import serialize

if TYPE_CHECKING:
    from roost.jid import JID

log = logging.getLogger(__name__)

STORE: Final = VCARD_STORE  # kv keys defined by the kv store, which exports them (XEP-0227)
KEY: Final = VCARD_KEY  # one vcard-temp vCard per account
MAX_VCARD_BYTES: Final = 65536  # default of [limits].vcard_size: serialized size of a vCard


def photo_hash(vcard: Element | None) -> str:
    """The XEP-0153 hash of a vCard's photo: SHA-1 hex of the decoded BINVAL, or ""."""
    if vcard is None:
        return ""
    photo = vcard.find("PHOTO", NS_VCARD)
    binval = None if photo is None else photo.find("BINVAL", NS_VCARD)
    if binval is None:
        return ""
    encoded = "".join(binval.text.split())
    try:
        image = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return ""
    return hashlib.sha1(image, usedforsecurity=False).hexdigest() if image else ""


def add_avatar_hash(stanza: Element, digest: str) -> bool:
    """Put ``<photo>digest</photo>`` into a presence unless the client gave its own photo;
    True if the server set it."""
    update = stanza.find("x", NS_VCARD_UPDATE)
    if update is None:
        update = stanza.sub("x", NS_VCARD_UPDATE)
    elif update.find("photo", NS_VCARD_UPDATE) is not None:
        return False
    update.sub("photo", NS_VCARD_UPDATE, text=digest)
    return True


class VCard(Module):
    """vcard-temp storage and the avatar hash in broadcast presence."""

    name = "vcard"
    implements = (
        Spec(
            "XEP-0054",
            "1.2",
            note=f"vCards up to [limits].vcard_size (default {MAX_VCARD_BYTES} bytes)",
        ),
        Spec("XEP-0153", "1.1", note="the server adds the hash to broadcast presence"),
    )

    def setup(self, api: ModuleAPI) -> None:
        self.hashes: dict[str, str] = {}  # online account (bare JID) → its photo hash
        self.tagged: set[str] = set()  # full JIDs whose current presence got our <photo/>
        api.feature(NS_VCARD)
        api.feature(NS_VCARD, account=True)
        api.on_iq("get", SELF, NS_VCARD, "vCard", self.get_own)
        api.on_iq("set", SELF, NS_VCARD, "vCard", self.set_own)
        api.on_iq("get", BARE, NS_VCARD, "vCard", self.get_other)
        api.on_iq("set", BARE, NS_VCARD, "vCard", self.refuse)
        # before the presence module broadcasts (DEFAULT): the hash must be loaded by then
        api.on("presence", SELF, self.before_broadcast, ARCHIVE)
        api.hook(OutgoingPresence, self.outgoing)
        api.hook(SessionEnded, self.ended)

    # -- vcard-temp -------------------------------------------------------------------------
    async def load(self, user: JID) -> Element | None:
        """The stored vCard of an account, if any."""
        data = await self.api.server.storage.kv.get(user.domain, user.local or "", STORE, KEY)
        return None if data is None else parse_fragment(data)

    async def get_own(self, request: IqRequest) -> Element:
        """One's own vCard, or an empty one (§3.1)."""
        vcard = await self.load(request.to.bare)
        return Element("vCard", NS_VCARD) if vcard is None else vcard

    async def get_other(self, request: IqRequest) -> Element:
        """Someone else's vCard; none (or no account) is service-unavailable (§3.3)."""
        vcard = await self.load(request.to.bare)
        if vcard is None:
            raise StanzaError("service-unavailable")
        return vcard

    def refuse(self, request: IqRequest) -> None:
        """Setting someone else's vCard (§3.2)."""
        raise StanzaError("forbidden", "only the owner may change a vCard")

    async def set_own(self, request: IqRequest) -> None:
        """Store one's vCard (§3.2); re-broadcast presence if the photo changed (XEP-0153)."""
        vcard = request.payload
        data = serialize(vcard)
        limit = self.api.server.config.limits.vcard_size
        if len(data) > limit:
            raise StanzaError("policy-violation", f"the vCard is over {limit} bytes")
        user = request.to.bare
        await self.api.server.storage.kv.set(user.domain, user.local or "", STORE, KEY, data)
        bare = str(user)
        digest = photo_hash(vcard)
        previous = self.hashes.get(bare)
        if self.api.server.sessions.resources(bare):
            self.hashes[bare] = digest  # also wins over a load that read the old vCard
        if previous is not None and digest != previous:
            await self.rebroadcast(bare)

    # -- XEP-0153 ---------------------------------------------------------------------------
    def before_broadcast(self, routed: Routed) -> Awaitable[bool] | None:
        """Load the account's hash before its first broadcast presence goes out."""
        stanza = routed.stanza
        if routed.origin is None or "to" in stanza.attrs or "type" in stanza.attrs:
            return None
        if str(routed.sender.bare) in self.hashes:
            return None
        return self.cache_hash(routed.sender.bare)

    async def cache_hash(self, user: JID) -> bool:
        """Read the vCard and remember its hash while the account is online (if storage
        fails, the presence goes out without a hash rather than not at all)."""
        try:
            digest = photo_hash(await self.load(user))
        except Exception:
            log.exception("reading the vCard of %s failed", user)
            return False
        bare = str(user)
        if self.api.server.sessions.resources(bare):
            self.hashes.setdefault(bare, digest)
        return False  # the presence goes on to the presence module

    def outgoing(self, event: OutgoingPresence) -> None:
        """Add the avatar hash to a broadcast available presence (XEP-0153 §4.1)."""
        session, stanza = event.session, event.stanza
        jid = session.jid
        if "type" in stanza.attrs:
            return
        digest = self.hashes.get(str(jid.bare))
        if digest is not None and add_avatar_hash(stanza, digest):
            self.tagged.add(session.jid_str)
        else:
            self.tagged.discard(session.jid_str)

    async def rebroadcast(self, bare: str) -> None:
        """Send again the presence of each resource whose photo the server had set."""
        router = self.api.server.router
        for session in self.api.server.sessions.resources(bare):
            current = session.presence
            if current is None or session.jid_str not in self.tagged or session.closed:
                continue
            update = current.copy()
            for old in [c for c in update.elements() if c.xmlns == NS_VCARD_UPDATE]:
                update.remove(old)
            pending = router.route(update, session)
            if pending is not None:
                await pending

    def ended(self, event: SessionEnded) -> None:
        """Forget a session, and the account's hash when its last session is gone."""
        session = event.session
        self.tagged.discard(session.jid_str)
        jid = session.jid
        if not self.api.server.sessions.resources(str(jid.bare)):
            self.hashes.pop(str(jid.bare), None)
