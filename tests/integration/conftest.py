"""Fixtures: one shared roost server for the integration tests that need no special config."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.harness import ServerProcess, make_server

_counter = itertools.count()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A running server on free loopback ports, shared by the session (SQLite)."""
    process = make_server(tmp_path_factory.mktemp("roost"))
    process.start()
    yield process
    process.stop()


@pytest.fixture
def new_user(server: ServerProcess) -> Callable[[str], str]:
    """A factory of fresh accounts on the shared server: ``new_user("alice")`` → bare JID."""

    def create(prefix: str = "user") -> str:
        return server.add_user(f"{prefix}{next(_counter)}")

    return create


@pytest.fixture
def server_dir(tmp_path: Path) -> Path:
    """A directory for a test's own server."""
    return tmp_path / "roost"
