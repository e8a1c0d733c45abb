"""Message delivery to local accounts (RFC 6121 §8.5.1, §8.5.2, §8.5.3.2.1).

The router delivers a message to a bound full JID itself (§8.5.3.1, also to a session that
is bound but has not sent presence yet) and hands a message to an unbound full JID to the
``bare`` handlers (§8.5.3.2); a message without 'to' is addressed to the sender's own bare
JID (``self``, RFC 6120 §10.3.1). This module decides everything else:

| type      | available resources  | none available (§8.5.2.2) | unbound full JID (§8.5.3.2.1) |
| --------- | -------------------- | ------------------------- | ----------------------------- |
| normal    | top priority (>= 0)  | offline, else error       | ``service-unavailable``       |
| chat      | top priority (>= 0)  | offline, else error       | as if to the bare JID         |
| headline  | every priority >= 0  | dropped                   | dropped                       |
| groupchat | ``service-unavailable`` (§8.5.2.1.1, §8.5.2.2.1, §8.5.3.2.1)                       |
| error     | dropped                                                                             |

A type this server does not know is handled as ``normal`` (RFC 6121 §5.2.2). Resources with
a negative priority never get bare-JID messages; when every available resource has one, the
account counts as having none (§8.5.2.1.1 SHOULD). "Highest non-negative priority" is the
"most available" choice of §8.5.2.1.1, as Prosody's ``top_resources`` does: every resource
sharing the highest priority gets a copy. For a full JID that is not bound, §8.5.3.2.1 allows
only ignoring or an error for normal and headline; we answer ``normal`` with the SHOULD error
and drop headlines silently, as Prosody does (Prosody also routes ``normal`` like a bare-JID
message, which the RFC does not allow).

No such account (§8.5.1): ``service-unavailable`` for normal, chat and groupchat; headline and
error are dropped. Existence is looked up in the account store only when a message would be
stored offline, through a small cache (positive answers 60 s, negative 10 s).

Offline storage is the ``offline`` module's ``OfflineService`` (XEP-0160); without it, or past
the user's quota, the sender gets ``service-unavailable`` (§8.5.2.2.1).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

from roost.core.hooks import DEFAULT
from roost.core.module import Module, ModuleAPI, Spec
from roost.core.router import deliver_all
from roost.core.stanza import BARE, SELF, Routed
from roost.errors import StanzaError
from roost.modules.offline import OfflineService
from roost.xml.serializer import serialize

if TYPE_CHECKING:
    from roost.jid import JID
    from roost.storage.base import AccountStore
    from roost.xml.element import Element

KNOWN_TYPES: Final = frozenset({"normal", "chat", "groupchat", "headline", "error"})
EXISTS_TTL: Final = 60.0  # seconds an existing account is remembered
MISSING_TTL: Final = 10.0  # seconds a missing one is (accounts made by the CLI show up soon)
CACHE_SIZE: Final = 4096


class Resource(Protocol):
    """What delivery needs to know of a session."""

    @property
    def presence(self) -> Element | None: ...
    @property
    def priority(self) -> int: ...


R = TypeVar("R", bound=Resource)


def message_type(stanza: Element) -> str:
    """The message's type, unknown or absent ones read as "normal" (RFC 6121 §5.2.2)."""
    kind = stanza.attrs.get("type", "normal")
    return kind if kind in KNOWN_TYPES else "normal"


def recipients(resources: Sequence[R], kind: str) -> list[R]:
    """The resources that get a bare-JID message of type ``kind`` (§8.5.2.1.1).

    Only available resources with a non-negative priority are candidates; a headline goes
    to all of them, normal and chat to those sharing the highest priority.
    """
    candidates = [r for r in resources if r.presence is not None and r.priority >= 0]
    if kind == "headline" or len(candidates) < 2:
        return candidates
    top = max(r.priority for r in candidates)
    return [r for r in candidates if r.priority == top]


class AccountCache:
    """Whether accounts exist, remembered for a short while (bounded, oldest out first)."""

    __slots__ = ("_accounts", "_known")

    def __init__(self, accounts: AccountStore) -> None:
        self._accounts = accounts
        self._known: dict[str, tuple[bool, float]] = {}

    async def exists(self, jid: JID) -> bool:
        """Whether the account of the bare JID ``jid`` exists."""
        key = str(jid)
        now = time.monotonic()
        hit = self._known.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        found = await self._accounts.exists(jid.domain, jid.local or "")
        self._known.pop(key, None)
        if len(self._known) >= CACHE_SIZE:
            del self._known[next(iter(self._known))]
        self._known[key] = (found, now + (EXISTS_TTL if found else MISSING_TTL))
        return found


class Message(Module):
    """Deliver messages addressed to accounts."""

    name = "message"
    implements = (Spec("RFC 6121", "§8.5"),)

    def setup(self, api: ModuleAPI) -> None:
        self.accounts = AccountCache(api.server.storage.accounts)
        api.on("message", BARE, self.to_account, DEFAULT)
        api.on("message", SELF, self.to_account, DEFAULT)

    def to_account(self, routed: Routed) -> bool | Awaitable[bool]:
        """Deliver to the account's resources, store offline, or refuse (see the table)."""
        stanza = routed.stanza
        kind = message_type(stanza)
        if kind == "error":
            return True
        if kind == "groupchat":
            raise StanzaError("service-unavailable")
        if routed.to.resource is not None and kind != "chat":  # §8.5.3.2.1
            if kind == "headline":
                return True
            raise StanzaError("service-unavailable")
        bare = routed.to.bare
        targets = recipients(self.api.server.sessions.resources(str(bare)), kind)
        if targets:
            deliver_all(self.api.server.router, targets, stanza, serialize(stanza))
            return True
        if kind == "headline":  # §8.5.2.2.1: silently ignored
            return True
        return self.store_offline(bare, stanza)

    async def store_offline(self, user: JID, stanza: Element) -> bool:
        """§8.5.2.2.1 for normal and chat: offline storage, or ``service-unavailable``."""
        if not await self.accounts.exists(user):
            raise StanzaError("service-unavailable")
        try:
            offline = self.api.service(OfflineService)
        except LookupError:  # the offline module is not loaded
            raise StanzaError("service-unavailable") from None
        if not await offline.store(user, stanza):
            raise StanzaError("service-unavailable")
        return True
