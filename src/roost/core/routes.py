"""The route table: what serves each domain (docs/architecture.md; ejabberd's route table by domain,
wokkel's ``Router.routes``).

``routes.find(domain)`` answers one of:
- a ``UserHost``: accounts, c2s logins, and the RFC 6121 §8.5 rules for what no module
  handled (below);
- a ``ServiceHost``: a service domain (MUC, PubSub, upload) with its own handlers and no
  accounts; what its modules do not handle gets ``service-unavailable`` (RFC 6120 §8.4) for
  iq requests and messages, presence is dropped;
- a ``ComponentRoute``: an external component (XEP-0114) that takes every stanza to its
  domain and to the subdomains of it;
- nothing: the stanza goes to the remote router (s2s, later the cluster). Until federation
  exists, ``NoFederation`` answers ``remote-server-not-found``.

RFC 6121 defaults of a user host (§8.5, RFC 6120 §8.4, §10.5):
- iq get/set that no module handled: to a bound full JID → delivered; otherwise
  ``service-unavailable``;
- iq result/error to an account: to a bound full JID → delivered; otherwise dropped;
- message/presence to a bound full JID → delivered; to a full JID that is not bound →
  handled as if addressed to the bare JID (§8.5.3.2, the ``bare`` handlers decide); then
  message → ``service-unavailable``, presence → dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar, Protocol

from roost.core.host import Host
from roost.core.stanza import BARE, FULL
from roost.errors import StanzaError

if TYPE_CHECKING:
    from roost.core.router import Pending, Router
    from roost.core.session import Session
    from roost.core.stanza import Routed
    from roost.jid import JID
    from roost.xml.element import Element


class UserHost(Host):
    """A virtual host with accounts (``[server].domains``)."""

    kind: ClassVar[str] = "user"
    accepts_logins: ClassVar[bool] = True

    def unhandled(self, router: Router, routed: Routed, addressing: str) -> Pending:
        """RFC 6121 §8.5 for message and presence that no module handled."""
        stanza = routed.stanza
        if addressing == FULL:
            session = self.server.sessions.get(str(routed.to))
            if session is not None:
                router.deliver(session, stanza)
                return None
            handlers = self.stanza_handlers.get((stanza.name, BARE))  # §8.5.3.2
            if handlers:
                return router.run(handlers, 0, routed, BARE)
        if stanza.name == "message":
            return router.bounce(stanza, StanzaError("service-unavailable"), routed.origin)
        return None

    def unhandled_iq(self, router: Router, routed: Routed) -> Pending:
        """§8.5.3.1 / RFC 6120 §8.4: a full JID gets it, anything else an error."""
        if routed.addressing == FULL:
            session = self.server.sessions.get(str(routed.to))
            if session is not None:
                router.deliver(session, routed.stanza)
                return None
        return router.bounce(routed.stanza, StanzaError("service-unavailable"), routed.origin)

    def iq_response(self, router: Router, routed: Routed) -> Pending:
        """A result or error for a client: delivered to a bound full JID, else dropped."""
        if routed.addressing == FULL:
            session = self.server.sessions.get(str(routed.to))
            if session is not None:
                router.deliver(session, routed.stanza)
        return None


class ServiceHost(Host):
    """A service domain (``[services]``): its modules' handlers, no accounts, no logins."""

    kind: ClassVar[str] = "service"

    def unhandled(self, router: Router, routed: Routed, addressing: str) -> Pending:
        """A message nobody takes is refused (RFC 6120 §10.5.3.1); presence is dropped."""
        if routed.stanza.name == "message":
            return router.bounce(routed.stanza, StanzaError("service-unavailable"), routed.origin)
        return None

    def unhandled_iq(self, router: Router, routed: Routed) -> Pending:
        """RFC 6120 §8.4."""
        return router.bounce(routed.stanza, StanzaError("service-unavailable"), routed.origin)

    def iq_response(self, router: Router, routed: Routed) -> Pending:
        """Nobody waits for it: dropped."""
        return None


class ComponentRoute(Protocol):
    """An external component's end of the route table (XEP-0114)."""

    domain: str

    def deliver(self, stanza: Element) -> None:
        """Hand a stanza addressed to the component's domain (or a subdomain) to it."""
        ...


class RemoteRouter(Protocol):
    """Where stanzas to domains this server does not serve go (s2s, a cluster)."""

    def route_remote(
        self, router: Router, stanza: Element, to: JID, origin: Session | None
    ) -> Pending:
        """Send ``stanza`` towards ``to.domain`` (or bounce it)."""
        ...


class NoFederation:
    """The remote router of a server without s2s: every remote domain is unreachable."""

    def route_remote(
        self, router: Router, stanza: Element, to: JID, origin: Session | None
    ) -> Pending:
        """RFC 6120 §8.3.3.16 ``remote-server-not-found``."""
        error = StanzaError("remote-server-not-found", "federation is not available")
        return router.bounce(stanza, error, origin)


class RouteTable:
    """Domain → user host | service host | component; anything else → the remote router."""

    __slots__ = ("_components", "hosts", "login_domains", "remote")

    def __init__(self) -> None:
        self.hosts: dict[str, Host] = {}  # user and service hosts: the router's one lookup
        self._components: dict[str, ComponentRoute] = {}
        self.login_domains: frozenset[str] = frozenset()  # where c2s streams may log in
        self.remote: RemoteRouter = NoFederation()

    def add_host(self, host: Host) -> None:
        """Serve ``host.name`` with ``host``."""
        if host.name in self.hosts or host.name in self._components:
            raise ValueError(f"{host.name} is routed already")
        self.hosts[host.name] = host
        if host.accepts_logins:
            self.login_domains = self.login_domains | {host.name}

    def add_component(self, component: ComponentRoute) -> None:
        """Route ``component.domain`` and its subdomains to an external component."""
        if component.domain in self.hosts or component.domain in self._components:
            raise ValueError(f"{component.domain} is routed already")
        self._components[component.domain] = component

    def remove_component(self, component: ComponentRoute) -> None:
        """Stop routing to a component (its domain becomes remote)."""
        if self._components.get(component.domain) is component:
            del self._components[component.domain]

    def component(self, domain: str) -> ComponentRoute | None:
        """The component serving ``domain`` or one of its parent domains."""
        components = self._components
        if not components:
            return None
        while True:
            found = components.get(domain)
            if found is not None:
                return found
            _, dot, domain = domain.partition(".")
            if not dot:
                return None

    def user_hosts(self) -> Iterator[Host]:
        """The hosts with accounts."""
        return (h for h in self.hosts.values() if h.accepts_logins)
