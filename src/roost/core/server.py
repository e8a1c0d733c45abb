"""The server core: route table, router, sessions, hooks and storage in one object (no globals).

Everything a module or a transport needs is reached through this object, so two servers can
run in one process. ``roost.server`` builds it from the configuration, loads the modules on
its hosts and adds listeners; ``tests/unit/harness.py`` builds one in-process.
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
from roost.core.routes import RouteTable, ServiceHost, UserHost
from roost.core.session import Session
from roost.core.sessions import LocalSessions, SessionRegistry
from roost.errors import StanzaError, StreamError
from roost.jid import JID
from roost.stream.features import Phase, StaticOffer
from roost.xml.element import Element
from roost.xml.ns import NS_STREAM_LIMITS

if TYPE_CHECKING:
    from roost.config import Config
    from roost.core.c2s import C2SConnection
    from roost.core.module import StreamFeature
    from roost.storage.base import Storage

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
        self,
        config: Config,
        storage: Storage,
        *,
        cb_data: bytes | None,
        tls_available: bool,
        sessions: SessionRegistry | None = None,
    ) -> None:
        self.config = config
        self.storage = storage
        self.cb_data = cb_data
        self.tls_available = tls_available
        self.started = time.time()
        self.hooks = HookBus()  # the global bus; each host has its own
        self.sessions: SessionRegistry = LocalSessions() if sessions is None else sessions
        self.routes = RouteTable()
        self.hosts = self.routes.hosts  # user and service hosts by domain
        for name in config.server.domains:
            self.routes.add_host(UserHost(self, name))
        self.iq = IqTracker()
        self.limiter = Limiter(config.limits)
        self.router = Router(self)
        self.connections: set[C2SConnection] = set()
        limits = config.limits
        # XEP-0478: the limits in force in each phase of the stream.
        self.limits_feature = StaticOffer(
            {
                Phase.PRE_AUTH: (
                    stream_limits(limits.stanza_size_preauth, limits.preauth_timeout),
                ),
                Phase.PRE_BIND: (stream_limits(limits.stanza_size, limits.idle_timeout),),
            }
        )

    def add_service_host(self, domain: str) -> Host:
        """Route ``domain`` to a new service host (no accounts, no logins)."""
        host = ServiceHost(self, domain)
        self.routes.add_host(host)
        return host

    def stream_negotiators(self, domain: str) -> list[StreamFeature]:
        """The stream's negotiators from outside it: the limits, then the host's modules'."""
        host = self.hosts.get(domain)
        if host is None:
            return [self.limits_feature]
        return [self.limits_feature, *host.stream_features]

    # -- sessions ----------------------------------------------------------------------------
    def bind(self, connection: C2SConnection, bare: JID, resource: str | None) -> Session:
        """Bind a resource (RFC 6120 §7): a conflicting older session is replaced."""
        existing = self.sessions.resources(str(bare))
        if resource is None:
            resource = secrets.token_hex(6)
            while any(s.jid.resource == resource for s in existing):
                resource = secrets.token_hex(6)
        full = JID(bare.local, bare.domain, resource)
        old = self.sessions.get(str(full))
        if old is None and len(existing) >= self.config.limits.resources_per_account:
            raise StanzaError("resource-constraint", "too many resources are bound")
        if old is not None:
            # The new session replaces the old one, which gets <conflict/> (Prosody's default).
            old.close(StreamError("conflict", "replaced by a new connection"))
            self.end_session(old, "conflict")
        session = Session(self.hosts[bare.domain], full, connection)
        self.sessions.add(session)
        return session

    def connection_ended(self, connection: C2SConnection, reason: str) -> None:
        """A client connection is gone: its session (if any) ends with it."""
        self.connections.discard(connection)
        if connection.session is not None:
            self.end_session(connection.session, reason)

    def end_session(self, session: Session, reason: str) -> None:
        """Forget a session and tell its host's modules (once)."""
        if self.sessions.remove(session):
            session.closed = True
            result = session.host.hooks.fire(SessionEnded(session, reason))
            if not isinstance(result, bool):
                log.error("a SessionEnded handler of %s waits; use api.spawn", session.host)

    def sweep(self) -> None:
        """Close streams past the pre-auth timeout; ping, then close idle ones."""
        now = time.monotonic()
        limits = self.config.limits
        for conn in list(self.connections):
            if conn.closed:
                self.connections.discard(conn)
            elif conn.authenticated_at == 0.0:
                if now - conn.created > limits.preauth_timeout:
                    conn.close(StreamError("connection-timeout", "authenticate sooner"))
            elif now - conn.last_active > limits.idle_timeout:
                if conn.ping_sent <= conn.last_active:
                    if conn.session is None:
                        conn.close(StreamError("connection-timeout", "idle"))
                    else:
                        conn.ping()
                elif now - conn.ping_sent > limits.idle_close_after:
                    conn.close(StreamError("connection-timeout", "no answer to ping"))

    def shutdown(self) -> None:
        """Close every stream with ``system-shutdown`` (RFC 6120 §4.9.3.20)."""
        for conn in list(self.connections):
            conn.close(StreamError("system-shutdown", "the server is stopping"))

    def uptime(self) -> float:
        """Seconds since start."""
        return time.time() - self.started
