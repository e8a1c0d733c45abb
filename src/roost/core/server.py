"""The server core: hosts, router, sessions, hooks and storage in one object (no globals).

Everything a module or a transport needs is reached through this object, so two servers can
run in one process. ``roost.server`` builds it from the configuration and adds listeners.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import TYPE_CHECKING

from roost.core.hooks import HookBus, SessionEnded
from roost.core.host import Host
from roost.core.iq import IqTracker
from roost.core.limits import Limiter
from roost.core.router import Router
from roost.core.sessions import SessionTable
from roost.errors import StanzaError, StreamError
from roost.jid import JID
from roost.xml.element import Element
from roost.xml.ns import NS_STREAM_LIMITS

if TYPE_CHECKING:
    from roost.config import Config
    from roost.core.session import C2SSession
    from roost.storage.base import Storage
    from roost.stream.c2s import C2SStream

log = logging.getLogger(__name__)


def stream_limits(max_bytes: int, idle_seconds: int) -> Element:
    """A XEP-0478 ``<limits/>`` stream feature."""
    limits = Element("limits", NS_STREAM_LIMITS)
    limits.sub("max-bytes", text=str(max_bytes))
    limits.sub("idle-seconds", text=str(idle_seconds))
    return limits


class ServerCore:
    """The running server's state, handed to every module and transport."""

    def __init__(
        self, config: Config, storage: Storage, *, cb_data: bytes | None, tls_available: bool
    ) -> None:
        self.config = config
        self.storage = storage
        self.cb_data = cb_data
        self.tls_available = tls_available
        self.started = time.time()
        self.hooks = HookBus()
        self.sessions = SessionTable()
        self.hosts: dict[str, Host] = {name: Host(self, name) for name in config.server.domains}
        self.host_names = frozenset(self.hosts)
        self.iq = IqTracker()
        self.router = Router(self)
        self.limiter = Limiter(config.limits)
        self.connections: set[C2SSession] = set()
        limits = config.limits
        # XEP-0478: the limits in force in each phase of the stream.
        self.limits_feature = stream_limits(limits.stanza_size_preauth, limits.preauth_timeout)
        self.limits_feature_bound = stream_limits(limits.stanza_size, limits.idle_timeout)

    def stream_features(self, stream: C2SStream) -> list[Element]:
        """The post-authentication features offered by the modules of the stream's host."""
        host = self.hosts.get(stream.domain or "")
        if host is None:
            return [self.limits_feature_bound]
        found = (feature(stream) for feature in host.stream_features)
        return [self.limits_feature_bound, *(f for f in found if f is not None)]

    # -- sessions ----------------------------------------------------------------------------
    def bind(self, session: C2SSession, bare: JID, resource: str | None) -> JID:
        """Bind a resource (RFC 6120 §7): a conflicting older session is replaced."""
        existing = self.sessions.resources(str(bare))
        if resource is None:
            resource = secrets.token_hex(6)
            while any(s.jid is not None and s.jid.resource == resource for s in existing):
                resource = secrets.token_hex(6)
        full = JID(bare.local, bare.domain, resource)
        old = self.sessions.get(str(full))
        if old is None and len(existing) >= self.config.limits.resources_per_account:
            raise StanzaError("resource-constraint", "too many resources are bound")
        if old is not None:
            # The new session replaces the old one, which gets <conflict/> (Prosody's default).
            old.close(StreamError("conflict", "replaced by a new connection"))
            self.sessions.remove(old)
        self.sessions.add(str(full), session)
        return full

    def session_ended(self, session: C2SSession, reason: str) -> None:
        """Forget a session and tell the modules (once)."""
        self.connections.discard(session)
        if session.jid is not None and self.sessions.remove(session):
            self.hooks.fire(SessionEnded(session, reason))

    def sweep(self) -> None:
        """Close streams past the pre-auth timeout; ping, then close idle ones."""
        now = time.monotonic()
        limits = self.config.limits
        for session in list(self.connections):
            if session.closed:
                self.connections.discard(session)
            elif session.authenticated_at == 0.0:
                if now - session.created > limits.preauth_timeout:
                    session.close(StreamError("connection-timeout", "authenticate sooner"))
            elif now - session.last_active > limits.idle_timeout:
                if session.ping_sent <= session.last_active:
                    if session.jid is None:
                        session.close(StreamError("connection-timeout", "idle"))
                    else:
                        session.ping()
                elif now - session.ping_sent > limits.idle_close_after:
                    session.close(StreamError("connection-timeout", "no answer to ping"))

    def shutdown(self) -> None:
        """Close every stream with ``system-shutdown`` (RFC 6120 §4.9.3.20)."""
        for session in list(self.connections):
            session.close(StreamError("system-shutdown", "the server is stopping"))

    def uptime(self) -> float:
        """Seconds since start."""
        return time.time() - self.started
