"""Storage fixtures: every test runs once per backend (SQLite file, fresh PostgreSQL database)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from roost.storage import Storage
from tests.unit.storage.storage_harness import BACKENDS, StorageTarget, make_target, opened


@pytest.fixture(params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> StorageTarget:
    """Where a backend under test keeps its data."""
    return make_target(request, tmp_path)


@pytest_asyncio.fixture
async def storage(target: StorageTarget) -> AsyncIterator[Storage]:
    """An opened (migrated) storage of each backend."""
    async with opened(target) as storage:
        yield storage
