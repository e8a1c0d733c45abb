"""The built-in modules, by name (the names used in ``[modules].enabled``)."""

from __future__ import annotations

from typing import Final

from roost.core.module import Module
from roost.modules.blocking import Blocking
from roost.modules.disco import Disco
from roost.modules.im.presence import Presence
from roost.modules.im.roster import RosterModule
from roost.modules.last import LastActivity
from roost.modules.message import Message
from roost.modules.offline import Offline
from roost.modules.ping import Ping
from roost.modules.private import PrivateStorage
from roost.modules.session import LegacySession
from roost.modules.time import EntityTime
from roost.modules.vcard import VCard
from roost.modules.version import Version

BUILTIN: Final[dict[str, type[Module]]] = {
    cls.name: cls
    for cls in (
        Disco,
        Ping,
        Version,
        EntityTime,
        LegacySession,
        RosterModule,
        Presence,
        Message,
        Offline,
        Blocking,
        VCard,
        PrivateStorage,
        LastActivity,
    )
}
