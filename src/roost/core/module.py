"""The module API: how features plug into a host (docs/architecture.md).

Every registration a module makes through its ``ModuleAPI`` is recorded and undone when the
module is unloaded (ejabberd's discipline); the shape of the calls follows Prosody's
``module:hook`` / ``module:add_feature`` / ``module:send_iq`` / ``module:open_store``.

What a module may do, and nothing else (``tests/unit/test_layers.py`` keeps modules away from
transports, the server and sessions' carriers):
- stanzas: ``on_iq``, ``on`` (message/presence by addressing), ``filter`` (every stanza to
  the host), ``pre_route`` (every stanza the host's accounts send, to any domain),
  ``outgoing`` (every stanza delivered to the host's sessions);
- lifecycle: ``hook`` (typed events of this host, handlers may be async and are awaited in
  order), ``hook_global`` (the server's bus);
- acting: ``deliver`` (to a session: the one way out), ``send`` (route a stanza the server
  originates), ``request`` (an iq to another entity, its reply matched by id and sender),
  ``spawn`` (a tracked task, awaited at shutdown), ``every`` (a timer);
- data: ``store`` (a typed store of the storage registry), ``options`` (the module's frozen
  ``Options`` read from ``[modules.NAME]``), ``provide``/``service`` (contracts between
  modules), ``feature``/``identity`` (disco), ``stream_feature`` (stream negotiation).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeAlias, TypeVar

from roost.config.options import NoOptions
from roost.core.hooks import DEFAULT, FILTER, Handler
from roost.core.stanza import Addressing, IqHandler, PreRouteHandler, StanzaFilter, StanzaHandler
from roost.errors import StanzaError
from roost.jid import JID, JIDError
from roost.stanzas import error_of
from roost.stream.features import FeatureNegotiator, FeatureOffer

if TYPE_CHECKING:
    from roost.core.c2s import C2SConnection
    from roost.core.host import Host
    from roost.core.server import ServerCore
    from roost.core.session import OutgoingFilter, Session
    from roost.stream.c2s import C2SStream
    from roost.xml.element import Element

StreamFeature: TypeAlias = "FeatureNegotiator[C2SConnection]"  # what host.stream_features holds
OfferFunction = Callable[["C2SStream"], "Element | None"]  # offered after authentication
T = TypeVar("T")
E = TypeVar("E")
S = TypeVar("S")

REQUEST_TIMEOUT: Final = 30.0  # seconds an api.request waits for its reply by default
STOP_GRACE: Final = 5.0  # seconds a module's tasks may take to finish at unload
_request_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Spec:
    """A protocol document a module implements (feeds the generated compliance page)."""

    document: str  # "RFC 6120", "XEP-0199"
    version: str = ""
    status: str = "complete"
    note: str = ""


class Module:
    """Base class of all modules: one instance per host it is loaded on.

    ``service`` names the ``[services]`` entry whose domain the module serves (a service
    host, e.g. "muc"); None means the module runs on every user host.
    """

    name: ClassVar[str]
    implements: ClassVar[tuple[Spec, ...]] = ()
    depends: ClassVar[tuple[str, ...]] = ()
    service: ClassVar[str | None] = None
    Options: ClassVar[type] = NoOptions

    def __init__(self, api: ModuleAPI) -> None:
        self.api = api

    def setup(self, api: ModuleAPI) -> None:
        """Register handlers, features and hooks."""

    def teardown(self) -> Awaitable[None] | None:
        """Release what is not a registration (registrations are undone for you); may be
        async: the server awaits it before storage closes."""
        return None


class ModuleAPI:
    """What a module may do to its host; every registration is recorded for unload."""

    def __init__(self, host: Host, module_name: str, options: object = None) -> None:
        self.host = host
        self.server: ServerCore = host.server
        self.name = module_name
        self.options: Any = NoOptions() if options is None else options
        self.log = logging.getLogger(f"roost.modules.{module_name}")
        self._undo: list[Callable[[], None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    def _record(self, undo: Callable[[], None]) -> None:
        self._undo.append(undo)

    # -- stanzas -----------------------------------------------------------------------------
    def on_iq(self, type_: str, to: Addressing, xmlns: str, name: str, handler: IqHandler) -> None:
        """Answer iq ``type_`` ('get'/'set') with payload {xmlns}name addressed as ``to``."""
        key = (type_, to, xmlns, name)
        handlers = self.host.iq_handlers
        if key in handlers:
            raise ValueError(f"{self.host.name}: an iq handler for {key} exists already")
        handlers[key] = handler
        self._record(lambda: handlers.pop(key, None) and None)

    def on(
        self, kind: str, to: Addressing, handler: StanzaHandler, priority: int = DEFAULT
    ) -> None:
        """Handle message/presence stanzas of ``kind`` addressed as ``to``."""
        self.host.add_stanza_handler((kind, to), handler, priority)
        self._record(lambda: self.host.remove_stanza_handler((kind, to), handler))

    def filter(self, fn: StanzaFilter, priority: int = FILTER) -> None:
        """See every stanza addressed to this host before dispatch (blocking, privacy)."""
        self.host.add_filter(fn, priority)
        self._record(lambda: self.host.remove_filter(fn))

    def pre_route(self, fn: PreRouteHandler, priority: int = DEFAULT) -> None:
        """See every stanza an account of this host sends, to any domain, before routing."""
        self.host.add_pre_route(fn, priority)
        self._record(lambda: self.host.remove_pre_route(fn))

    def outgoing(self, fn: OutgoingFilter, priority: int = DEFAULT) -> None:
        """See every stanza delivered to a session of this host (return None to consume)."""
        self.host.add_outgoing(fn, priority)
        self._record(lambda: self.host.remove_outgoing(fn))

    # -- lifecycle events --------------------------------------------------------------------
    def hook(self, event: type[E], handler: Handler[E], priority: int = DEFAULT) -> None:
        """Run ``handler`` on events of type ``event`` fired on this host."""
        self.host.hooks.add(event, handler, priority)
        self._record(lambda: self.host.hooks.remove(event, handler))

    def hook_global(self, event: type[E], handler: Handler[E], priority: int = DEFAULT) -> None:
        """Run ``handler`` on events of type ``event`` fired on the server's bus."""
        self.server.hooks.add(event, handler, priority)
        self._record(lambda: self.server.hooks.remove(event, handler))

    def fire(self, event: object) -> None:
        """Fire ``event`` on this host; handlers that wait finish in a tracked task."""
        result = self.host.hooks.fire(event)
        if not isinstance(result, bool):
            self.spawn(_awaited(result))

    # -- services between modules ------------------------------------------------------------
    def provide(self, kind: type[T], service: T) -> None:  # kind may be a Protocol
        """Offer ``service`` to the other modules of this host under the type ``kind``."""
        services = self.host.services
        services[kind] = service

        def withdraw() -> None:
            services.pop(kind, None)

        self._record(withdraw)

    def service(self, kind: type[T]) -> T:
        """A service another module provides (declare that module in ``depends``)."""
        found = self.host.services.get(kind)
        if found is None:
            raise LookupError(f"no module of {self.host.name} provides {kind.__name__}")
        return found  # type: ignore[return-value]

    def optional(self, kind: type[T]) -> T | None:
        """A service another module may provide (None when it is not loaded)."""
        return self.host.services.get(kind)  # type: ignore[return-value]

    def store(self, kind: type[S]) -> S:
        """The store of type ``kind`` from the storage registry."""
        found: S = self.server.storage.store(kind)
        return found

    # -- service discovery and stream features -----------------------------------------------
    def feature(self, var: str, *, account: bool = False) -> None:
        """Advertise a disco#info feature on the host (or on every account when ``account``)."""
        target = self.host.account_features if account else self.host.features
        target.append(var)
        self._record(lambda: target.remove(var))

    def identity(self, category: str, type_: str, name: str | None = None) -> None:
        """Advertise a disco#info identity of the host."""
        ident = (category, type_, name)
        self.host.identities.append(ident)
        self._record(lambda: self.host.identities.remove(ident))

    def stream_feature(self, feature: StreamFeature | OfferFunction) -> None:
        """Add a c2s stream feature: a negotiator (``roost.stream.features``: it offers
        features and may claim elements before and after binding), or a function offering one
        element in ``<stream:features/>`` after authentication."""
        negotiator = feature if isinstance(feature, FeatureNegotiator) else FeatureOffer(feature)
        self.host.stream_features.append(negotiator)
        self._record(lambda: self.host.stream_features.remove(negotiator))

    # -- acting ------------------------------------------------------------------------------
    def deliver(self, session: Session, stanza: Element, data: bytes | None = None) -> None:
        """Hand a stanza to a client session (through its outgoing chain)."""
        self.server.router.deliver(session, stanza, data)

    def send(self, stanza: Element, *, policy: bool = True) -> None:
        """Route a stanza the server originates (``from`` must be set).

        When a filter or handler has to wait, routing finishes in a task of this module
        (stanzas sent this way are not ordered among themselves once one of them waits).
        ``policy=False`` skips pre-route handlers and filters: for a policy module's own
        reply to a stanza it refused (the router's bounces do the same).
        """
        pending = self.server.router.route(stanza, None, policy=policy)
        if pending is not None:
            self.spawn(_awaited(pending))

    async def request(self, iq: Element, timeout: float = REQUEST_TIMEOUT) -> Element:
        """Send an iq get/set from the server and return its result.

        The reply is matched by id and by sender (the iq's 'to'); an error reply raises its
        ``StanzaError``, no reply within ``timeout`` raises ``remote-server-timeout``.
        """
        try:
            target = JID.parse(iq.attrs["to"])
        except (KeyError, JIDError):
            raise ValueError("api.request needs a valid 'to'") from None
        iq.attrs.setdefault("from", self.host.name)
        iq_id = iq.attrs.setdefault("id", f"roost-{self.name}-{next(_request_ids)}")
        reply = self.server.iq.expect(iq_id, target)
        self.send(iq)
        try:
            answer = await asyncio.wait_for(reply, timeout)
        except TimeoutError:
            raise StanzaError("remote-server-timeout", "no reply in time") from None
        if answer.attrs.get("type") == "error":
            raise error_of(answer)
        return answer

    def spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``work`` in a task of this module: kept until it ends, its failure logged
        once, awaited (then cancelled past ``STOP_GRACE``) when the module is unloaded."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("a task of %s failed", self.name, exc_info=task.exception())

    def every(self, seconds: float, fn: Callable[[], object]) -> None:
        """Call ``fn`` every ``seconds`` until unload (an awaitable it returns is spawned)."""
        loop = asyncio.get_running_loop()
        handle: list[asyncio.TimerHandle] = []

        def tick() -> None:
            handle[0] = loop.call_later(seconds, tick)
            result = fn()
            if inspect.iscoroutine(result):
                self.spawn(result)

        handle.append(loop.call_later(seconds, tick))
        self._record(lambda: handle[0].cancel())

    def unload(self) -> None:
        """Undo every registration, most recent first."""
        while self._undo:
            self._undo.pop()()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Unload, then let the module's tasks finish (writes in flight are not lost);
        what is still running after ``grace`` seconds is cancelled."""
        self.unload()
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in late:
            task.cancel()
        if late:
            self.log.warning("%s: %d tasks cancelled at unload", self.name, len(late))
            await asyncio.wait(late)


async def _awaited(pending: Awaitable[object]) -> None:
    await pending


async def stop_module(module: Module, api: ModuleAPI) -> None:
    """Unload a module: registrations undone, tasks finished, ``teardown`` awaited."""
    await api.stop()
    done = module.teardown()
    if done is not None:
        await done
