"""The module API: how features plug into a host (DESIGN.md §2).

Every registration a module makes through its ``ModuleAPI`` is recorded and undone when the
module is unloaded (ejabberd's discipline); the shape of the calls follows Prosody's
``module:hook`` / ``module:add_feature``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypeVar

from roost.core.hooks import DEFAULT, FILTER
from roost.core.stanza import Addressing, IqHandler, StanzaFilter, StanzaHandler

if TYPE_CHECKING:
    from roost.core.host import Host
    from roost.core.server import ServerCore
    from roost.stream.c2s import C2SStream
    from roost.xml.element import Element

StreamFeature = Callable[["C2SStream"], "Element | None"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Spec:
    """A protocol document a module implements (feeds the generated compliance page)."""

    document: str  # "RFC 6120", "XEP-0199"
    version: str = ""
    status: str = "complete"
    note: str = ""


class Module:
    """Base class of all modules: one instance per virtual host."""

    name: ClassVar[str]
    implements: ClassVar[tuple[Spec, ...]] = ()
    depends: ClassVar[tuple[str, ...]] = ()

    def __init__(self, api: ModuleAPI) -> None:
        self.api = api

    def setup(self, api: ModuleAPI) -> None:
        """Register handlers, features and hooks."""

    def teardown(self) -> None:
        """Release resources that are not registrations (registrations are undone for you)."""


class ModuleAPI:
    """What a module may do to its host; every registration is recorded for unload."""

    def __init__(self, host: Host, module_name: str) -> None:
        self.host = host
        self.server: ServerCore = host.server
        self.log = logging.getLogger(f"roost.modules.{module_name}")
        self._undo: list[Callable[[], None]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # -- stanzas -----------------------------------------------------------------------------
    def on_iq(self, type_: str, to: Addressing, xmlns: str, name: str, handler: IqHandler) -> None:
        """Answer iq ``type_`` ('get'/'set') with payload {xmlns}name addressed as ``to``."""
        key = (type_, to, xmlns, name)
        self.host.iq_handlers[key] = handler
        self._undo.append(lambda: self.host.iq_handlers.pop(key, None) and None)

    def on(
        self, kind: str, to: Addressing, handler: StanzaHandler, priority: int = DEFAULT
    ) -> None:
        """Handle message/presence stanzas of ``kind`` addressed as ``to``."""
        self.host.add_stanza_handler((kind, to), handler, priority)
        self._undo.append(lambda: self.host.remove_stanza_handler((kind, to), handler))

    def filter(self, fn: StanzaFilter, priority: int = FILTER) -> None:
        """See every stanza addressed to this host before dispatch (blocking, privacy)."""
        self.host.add_filter(fn, priority)
        self._undo.append(lambda: self.host.remove_filter(fn))

    def hook(self, event: type, handler: Callable[..., object], priority: int = DEFAULT) -> None:
        """Run ``handler`` on lifecycle events of type ``event``."""
        self.server.hooks.add(event, handler, priority)
        self._undo.append(lambda: self.server.hooks.remove(event, handler))

    # -- services between modules ------------------------------------------------------------
    def provide(self, kind: type[T], service: T) -> None:  # kind may be a Protocol
        """Offer ``service`` to the other modules of this host under the type ``kind``."""
        services = self.host.services
        services[kind] = service

        def withdraw() -> None:
            services.pop(kind, None)

        self._undo.append(withdraw)

    def service(self, kind: type[T]) -> T:
        """A service another module provides (declare that module in ``depends``)."""
        found = self.host.services.get(kind)
        if found is None:
            raise LookupError(f"no module of {self.host.name} provides {kind.__name__}")
        return found  # type: ignore[return-value]

    # -- service discovery and stream features -----------------------------------------------
    def feature(self, var: str, *, account: bool = False) -> None:
        """Advertise a disco#info feature on the host (or on every account when ``account``)."""
        target = self.host.account_features if account else self.host.features
        target.append(var)
        self._undo.append(lambda: target.remove(var))

    def identity(self, category: str, type_: str, name: str | None = None) -> None:
        """Advertise a disco#info identity of the host."""
        ident = (category, type_, name)
        self.host.identities.append(ident)
        self._undo.append(lambda: self.host.identities.remove(ident))

    def stream_feature(self, feature: StreamFeature) -> None:
        """Offer a feature in ``<stream:features/>`` after authentication."""
        self.host.stream_features.append(feature)
        self._undo.append(lambda: self.host.stream_features.remove(feature))

    # -- acting ------------------------------------------------------------------------------
    def send(self, stanza: Element) -> None:
        """Route a stanza the server originates (``from`` must be set).

        When a filter or handler has to wait, routing finishes in a task of this module
        (stanzas sent this way are not ordered among themselves once one of them waits).
        """
        pending = self.server.router.route(stanza, None)
        if pending is not None:
            task = asyncio.get_running_loop().create_task(self._finish(pending))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _finish(self, pending: Awaitable[None]) -> None:
        try:
            await pending
        except Exception:
            self.log.exception("routing a stanza sent by the module failed")

    def every(self, seconds: float, fn: Callable[[], object]) -> None:
        """Call ``fn`` every ``seconds`` until unload."""
        loop = asyncio.get_running_loop()
        handle: list[asyncio.TimerHandle] = []

        def tick() -> None:
            handle[0] = loop.call_later(seconds, tick)
            fn()

        handle.append(loop.call_later(seconds, tick))
        self._undo.append(lambda: handle[0].cancel())

    def unload(self) -> None:
        """Undo every registration, most recent first."""
        while self._undo:
            self._undo.pop()()
