"""Core fixtures: ``bare`` is an in-process server with no module loaded, so what a test
sees is the router's and the hosts' own behaviour plus what the test registers itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tests.unit.harness import NO_MODULES, Roost


@pytest_asyncio.fixture
async def bare(tmp_path: Path) -> AsyncIterator[Roost]:
    """A started server for "localhost" without modules."""
    roost = await Roost.start(tmp_path / "roost", extra=NO_MODULES)
    yield roost
    await roost.stop()
