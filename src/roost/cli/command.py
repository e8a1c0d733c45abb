"""What every ``roost`` command shares: the exit codes (see ``roost.cli``), CommandError,
output lines, and the configured storage opened for one command."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from roost.config import Config
from roost.storage import Storage, StorageError, open_storage

OK: Final = 0
FAILED: Final = 1
USAGE: Final = 2


class CommandError(Exception):
    """A command cannot go on: the message for the user and the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _out(line: str) -> None:
    sys.stdout.write(f"{line}\n")


def _err(line: str) -> None:
    sys.stderr.write(f"{line}\n")


@asynccontextmanager
async def _open_storage(config: Config) -> AsyncIterator[Storage]:
    if config.storage.backend == "sqlite":
        config.server.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    storage = open_storage(config.storage.backend, path=config.sqlite_path, dsn=config.storage.dsn)
    try:
        await storage.open()
    except (StorageError, OSError) as exc:
        raise CommandError(f"cannot open the storage: {exc}", FAILED) from None
    try:
        yield storage
    finally:
        await storage.close()
