"""The table of bound sessions: by full JID, and by bare JID for RFC 6121 §8.5 delivery."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roost.core.session import C2SSession

_EMPTY: dict[str, C2SSession] = {}


class SessionTable:
    """Full JID → session, and bare JID → {resource: session}."""

    __slots__ = ("_bare", "_full")

    def __init__(self) -> None:
        self._full: dict[str, C2SSession] = {}
        self._bare: dict[str, dict[str, C2SSession]] = {}

    def __len__(self) -> int:
        return len(self._full)

    def get(self, full: str) -> C2SSession | None:
        """The session bound to this full JID (string form), if any."""
        return self._full.get(full)

    def resources(self, bare: str) -> list[C2SSession]:
        """All sessions of an account (bare JID string form)."""
        return list(self._bare.get(bare, _EMPTY).values())

    def add(self, full: str, session: C2SSession) -> None:
        """Register a bound session (its ``jid`` is set by the caller afterwards)."""
        bare, _, resource = full.partition("/")
        self._full[full] = session
        self._bare.setdefault(bare, {})[resource] = session

    def remove(self, session: C2SSession) -> bool:
        """Forget a session; False if it was not (or no longer) registered."""
        jid = session.jid
        if jid is None:
            return False
        full = session.jid_str
        if self._full.get(full) is not session:
            return False
        del self._full[full]
        bare, _, resource = full.partition("/")
        per_account = self._bare.get(bare)
        if per_account is not None:
            per_account.pop(resource, None)
            if not per_account:
                del self._bare[bare]
        return True

    def all(self) -> list[C2SSession]:
        """Every bound session."""
        return list(self._full.values())
