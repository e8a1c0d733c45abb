"""Session-wide test fixtures: the throw-away PostgreSQL cluster (see pgcluster.py).

``pg_cluster`` starts one cluster for the whole session, the first time a test asks for it;
``postgres_dsn`` gives each test a fresh database in it. Without PostgreSQL server binaries,
tests that need them are skipped, or fail when CI=true or ROOST_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pgcluster import PgCluster, PgClusterError, find_bindir, postgres_required


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A running throw-away PostgreSQL cluster, stopped and removed after the session."""
    bindir = find_bindir()
    if bindir is None:
        reason = (
            "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb, "
            "no initdb on PATH, ROOST_PG_BINDIR unset); scripts/install-debian-deps.sh "
            "installs them"
        )
        if postgres_required():
            pytest.fail(
                f"{reason}; required because CI=true or ROOST_REQUIRE_POSTGRES=1", pytrace=False
            )
        pytest.skip(reason)
    cluster = PgCluster(bindir)
    try:
        cluster.start()
    except PgClusterError as exc:
        pytest.fail(f"cannot start the throw-away PostgreSQL cluster: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_dsn(pg_cluster: PgCluster) -> Iterator[str]:
    """The DSN of a fresh, empty database in the session's cluster, dropped afterwards."""
    dsn = pg_cluster.create_database()
    yield dsn
    pg_cluster.drop_database(dsn)
