"""Fixtures of the in-process harness (``tests/unit/harness.py``).

``server`` is a started ``Roost`` serving "localhost" with every built-in module, storage
in the test's temporary directory; ``client`` makes bound sessions on it:
``alice = await client("alice")`` (the account is created once; bound as alice@localhost/r).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.unit.harness import ClientFactory, Roost


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[Roost]:
    """A started in-process server for "localhost" (default modules, SQLite in tmp_path)."""
    roost = await Roost.start(tmp_path / "roost")
    yield roost
    await roost.stop()


@pytest.fixture
def client(server: Roost) -> ClientFactory:
    """``await client("alice", "phone")``: a bound session of alice@localhost/phone."""

    return server.bound
