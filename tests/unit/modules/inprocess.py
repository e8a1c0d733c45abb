"""A server core in the test's process: real storage (SQLite in tmp_path), real modules,
sessions whose carrier keeps what reaches them. No sockets, no subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from roost.config import Config
from roost.config.schema import ServerSection
from roost.core.module import stop_module
from roost.core.registry import module_order
from roost.core.server import ServerCore
from roost.core.session import Session
from roost.errors import StreamError
from roost.jid import JID
from roost.modules import BUILTIN
from roost.server import load_modules
from roost.storage import open_storage
from roost.xml.element import Element


class Inbox:
    """A carrier that keeps the stanzas delivered to its session."""

    __slots__ = ("stanzas",)

    def __init__(self) -> None:
        self.stanzas: list[Element] = []

    @property
    def peer(self) -> str:
        return ""

    def send_stanza(self, stanza: Element, data: bytes | None) -> None:
        self.stanzas.append(stanza)

    def close(self, error: StreamError | None = None) -> None:
        return


@asynccontextmanager
async def running(
    tmp_path: Path, modules: list[str], domains: tuple[str, ...] = ("a.example",)
) -> AsyncIterator[ServerCore]:
    """A core with ``modules`` (and their dependencies) loaded on every domain."""
    config = Config(path=tmp_path / "roost.toml", server=ServerSection(domains=domains))
    storage = open_storage("sqlite", path=tmp_path / "roost.sqlite")
    await storage.open()
    core = ServerCore(config, storage, cb_data=None, tls_available=False)
    classes = module_order(BUILTIN, modules)
    for host in core.routes.user_hosts():
        load_modules(host, classes, {})
    try:
        yield core
    finally:
        for host in core.routes.user_hosts():
            for module, api in reversed(list(host.modules.values())):
                await stop_module(module, api)
        await storage.close()


def bind(core: ServerCore, jid: str) -> tuple[Session, Inbox]:
    """A bound session of ``jid`` (full) and what reaches it."""
    full = JID.parse(jid)
    inbox = Inbox()
    session = Session(core.hosts[full.domain], full, inbox)
    core.sessions.add(session)
    return session, inbox
