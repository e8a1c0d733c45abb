"""Wires configuration, storage, modules and listeners into a running server.

``run(config)`` is what ``roost run`` calls: it starts everything, runs until SIGTERM or
SIGINT, then closes every stream with ``system-shutdown`` (RFC 6120 §4.9.3.20), stops the
listeners and closes storage.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import ssl
import sys
from typing import Final

from roost.config import Config, ConfigError
from roost.config.options import module_options, module_table_warnings
from roost.core.host import Host
from roost.core.module import Module, ModuleAPI, stop_module
from roost.core.registry import discover, module_order
from roost.core.server import ServerCore
from roost.modules import BUILTIN
from roost.storage import open_storage
from roost.tls import end_point_hash, ensure_certificate, server_context
from roost.transport.http import HttpListener
from roost.transport.tcp import listen_c2s

log = logging.getLogger("roost")

SWEEP_INTERVAL: Final = 5.0  # seconds between timeout sweeps (shorter when timeouts are)
SHUTDOWN_GRACE: Final = 0.5  # seconds for closing tags to drain at shutdown


def load_modules(host: Host, modules: list[type[Module]], options: dict[str, object]) -> None:
    """Set up ``modules`` (dependencies first) on ``host``."""
    for cls in modules:
        api = ModuleAPI(host, cls.name, options.get(cls.name))
        module = cls(api)
        module.setup(api)
        host.modules[cls.name] = (module, api)


def configured_modules(config: Config) -> tuple[list[type[Module]], dict[str, object]]:
    """The modules ``config`` enables (built-in and entry points, dependencies first) and
    their options from ``[modules.NAME]``; ConfigError for an unknown module or a bad table."""
    known = discover(BUILTIN)
    modules = module_order(known, config.modules.enabled, config.path.name)
    loaded = [cls.name for cls in modules]
    for warning in module_table_warnings(config.modules.options, built=known, loaded=loaded):
        log.warning("%s: %s", config.path.name, warning)
    options: dict[str, object] = {
        cls.name: module_options(
            cls.Options,
            config.modules.options.get(cls.name),
            file=config.path.name,
            module=cls.name,
        )
        for cls in modules
    }
    return modules, options


def install_modules(
    core: ServerCore, modules: list[type[Module]], options: dict[str, object]
) -> None:
    """Load the host modules on every user host and each service module on its service host
    (made on first need)."""
    for host in list(core.routes.user_hosts()):
        load_modules(host, [cls for cls in modules if cls.service is None], options)
    for cls in modules:
        domain = None if cls.service is None else getattr(core.config.services, cls.service, None)
        if domain:
            host = core.hosts.get(domain) or core.add_service_host(domain)
            load_modules(host, [cls], options)


async def unload_modules(core: ServerCore) -> None:
    """Unload every host's modules, the last loaded first (their tasks finish first)."""
    for host in core.hosts.values():
        for module, api in reversed(list(host.modules.values())):
            await stop_module(module, api)


class Server:
    """A running roost: core, listeners and the periodic sweep."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.core: ServerCore | None = None
        self._listeners: list[asyncio.Server] = []
        self._http: HttpListener | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        """Open storage, load modules, start listening."""
        config = self.config
        modules, options = configured_modules(config)
        config.server.data_dir.mkdir(parents=True, exist_ok=True)
        cert, key = ensure_certificate(config)
        starttls = server_context(cert, key)
        direct = server_context(cert, key, alpn=["xmpp-client"])
        storage = open_storage(
            config.storage.backend, path=config.sqlite_path, dsn=config.storage.dsn
        )
        await storage.open()
        core = ServerCore(config, storage, cb_data=end_point_hash(cert), tls_available=True)
        self.core = core
        install_modules(core, modules, options)
        await self._listen(core, starttls, direct)
        if config.listen.http is not None:
            tls = server_context(cert, key, alpn=["http/1.1"]) if config.http.tls else None
            self._http = HttpListener(core, config.listen.http, tls)
            await self._http.start()
        self._schedule_sweep()
        addresses = [str(s.sockets[0].getsockname()[:2]) for s in self._listeners if s.sockets]
        if self._http is not None:
            addresses.append(f"http {self._http.address}")
        log.info("roost ready: %s on %s", ", ".join(sorted(core.hosts)), ", ".join(addresses))

    async def _listen(
        self, core: ServerCore, starttls: ssl.SSLContext, direct: ssl.SSLContext
    ) -> None:
        listen = self.config.listen
        if listen.c2s is not None:
            self._listeners.append(await listen_c2s(core, listen.c2s, starttls, direct_tls=False))
        if listen.c2s_tls is not None:
            self._listeners.append(await listen_c2s(core, listen.c2s_tls, direct, direct_tls=True))

    def _schedule_sweep(self) -> None:
        limits = self.config.limits
        shortest = min(limits.preauth_timeout, limits.idle_timeout, limits.idle_close_after)
        interval = min(SWEEP_INTERVAL, max(0.2, shortest / 4))
        loop = asyncio.get_running_loop()

        def sweep() -> None:
            self._sweeper = loop.call_later(interval, sweep)
            if self.core is not None:
                self.core.sweep()
                self.core.limiter.sweep()

        self._sweeper = loop.call_later(interval, sweep)

    async def stop(self) -> None:
        """Tell every client, stop listening, close storage."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for listener in self._listeners:
            listener.close()
        core = self.core
        if core is None:
            return
        core.shutdown()
        await asyncio.sleep(SHUTDOWN_GRACE if core.connections else 0)
        if self._http is not None:
            await self._http.stop()
        await unload_modules(core)
        await core.storage.close()
        log.info("roost stopped")


def configure_logging(level: str) -> None:
    """Log to stderr at the configured level."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


async def serve(config: Config, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT when none is given)."""
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    server = Server(config)
    try:
        await server.start()
        await stop.wait()
    finally:
        await server.stop()


def pin_malloc_mmap_threshold() -> None:
    """Keep glibc's mmap threshold at 128 KiB (M_MMAP_THRESHOLD).

    uvloop gives each TLS connection a 256 KiB read buffer. Once one such buffer is freed,
    glibc raises its mmap threshold and later buffers come from heap pages that are already
    resident, which costs ~6 KiB per idle session (measured with bench/, N=5000). Pinning the
    threshold keeps them mmapped and untouched. No-op off glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(ctypes.c_int(-3), ctypes.c_int(128 * 1024))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        log.debug("mallopt is not available; the malloc mmap threshold stays adaptive")


def run(config: Config) -> int:
    """Run the server in the foreground; the process exit code."""
    configure_logging(config.server.log_level)
    pin_malloc_mmap_threshold()
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(serve(config))
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0
