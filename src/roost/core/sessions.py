"""The session registry: which bound sessions exist, by full JID and by account.

Every lookup of a session goes through the ``SessionRegistry`` protocol, so that the
in-memory table of a single process can be replaced by one shared between the nodes of a
cluster (docs/architecture.md: Redis holds which node holds which full JID), where a session of
another node is represented by a proxy ``Session`` whose carrier forwards to that node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from roost.core.session import Session


class SessionRegistry(Protocol):
    """Bound sessions by full JID, and by bare JID for RFC 6121 §8.5 delivery."""

    def __len__(self) -> int: ...

    def get(self, full: str) -> Session | None:
        """The session bound to this full JID (string form), if any."""
        ...

    def resources(self, bare: str) -> list[Session]:
        """All sessions of an account (bare JID string form)."""
        ...

    def add(self, session: Session) -> None:
        """Register a bound session under its full JID."""
        ...

    def remove(self, session: Session) -> bool:
        """Forget a session; False if it was not (or no longer) registered."""
        ...

    def all(self) -> list[Session]:
        """Every bound session."""
        ...


_EMPTY: dict[str, Session] = {}


class LocalSessions:
    """The in-memory registry of one process: full JID → session, bare → {resource: session}."""

    __slots__ = ("_bare", "_full")

    def __init__(self) -> None:
        self._full: dict[str, Session] = {}
        self._bare: dict[str, dict[str, Session]] = {}

    def __len__(self) -> int:
        return len(self._full)

    def get(self, full: str) -> Session | None:
        """The session bound to this full JID (string form), if any."""
        return self._full.get(full)

    def resources(self, bare: str) -> list[Session]:
        """All sessions of an account (bare JID string form)."""
        return list(self._bare.get(bare, _EMPTY).values())

    def add(self, session: Session) -> None:
        """Register a bound session under its full JID."""
        full = session.jid_str
        bare, _, resource = full.partition("/")
        self._full[full] = session
        self._bare.setdefault(bare, {})[resource] = session

    def remove(self, session: Session) -> bool:
        """Forget a session; False if it was not (or no longer) registered."""
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

    def all(self) -> list[Session]:
        """Every bound session."""
        return list(self._full.values())
