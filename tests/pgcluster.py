"""A throw-away PostgreSQL cluster for tests: initdb into a temp dir, start, databases, stop.

The cluster trusts every connection (``initdb -A trust``) and listens on 127.0.0.1 only,
on a free port, with its unix socket inside its own directory; durability is off (fsync),
since everything is removed at the end. initdb and postgres refuse to run as root: as root
they run as the ``postgres`` system user (created by Debian's postgresql package) through
``runuser``, in a directory given to that user.

    cluster = PgCluster(find_bindir())
    cluster.start()
    dsn = cluster.create_database()      # a fresh, empty database per call
    cluster.drop_database(dsn)           # to keep the cluster small (it lives in memory)
    cluster.stop()                       # stops only this cluster's server, removes the dir
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Final

SUPERUSER: Final = "roost"
OS_USER_WHEN_ROOT: Final = "postgres"
PG_LIB_DIR: Final = Path("/usr/lib/postgresql")

# Settings for a cluster that is thrown away: no durability, little memory, quiet.
_SETTINGS: Final = """
listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 16MB
max_connections = 100
log_min_messages = warning
"""


class PgClusterError(RuntimeError):
    """The cluster could not be created, started or used."""


def find_bindir() -> Path | None:
    """The PostgreSQL server binaries: $ROOST_PG_BINDIR, else the newest Debian install,
    else the directory of an ``initdb`` on PATH; None when there are none."""
    override = os.environ.get("ROOST_PG_BINDIR")
    if override:
        return Path(override)
    candidates = []
    if PG_LIB_DIR.is_dir():
        candidates = [
            (int(entry.name), entry / "bin")
            for entry in PG_LIB_DIR.iterdir()
            if entry.name.isdigit() and (entry / "bin" / "initdb").is_file()
        ]
    if candidates:
        return max(candidates)[1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def scratch_parent() -> str | None:
    """Where the cluster directory goes: $ROOST_PG_TMPDIR, else /dev/shm when usable (in
    memory: CREATE DATABASE takes ~20 ms there against ~300 ms on a slow disk, even with
    fsync off), else the system temp dir (None)."""
    override = os.environ.get("ROOST_PG_TMPDIR")
    if override:
        return override
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return None


def postgres_required() -> bool:
    """Whether missing PostgreSQL fails the run instead of skipping its tests.

    ROOST_REQUIRE_POSTGRES decides when set ("1" requires, "0" or "" does not); otherwise
    CI=true requires it.
    """
    required = os.environ.get("ROOST_REQUIRE_POSTGRES")
    if required is not None:
        return required not in ("", "0")
    return os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PgCluster:
    """One throw-away cluster; start() it, stop() it."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = 0
        self.dir: Path | None = None
        self._as_root = os.geteuid() == 0
        self._names = itertools.count(1)
        self._started = False

    @property
    def datadir(self) -> Path:
        return self._dir() / "data"

    @property
    def logfile(self) -> Path:
        return self._dir() / "postgres.log"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """initdb and start the server; raise PgClusterError with its output on failure."""
        if not (self.bindir / "initdb").is_file():
            raise PgClusterError(f"no initdb in {self.bindir}")
        self.dir = Path(tempfile.mkdtemp(prefix="roost-pg-", dir=scratch_parent()))
        try:
            self._give_dir_to_server_user()
            self._run(
                "initdb",
                [
                    *("-D", str(self.datadir), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8"),
                    *("--locale=C", "--no-sync"),
                ],
            )
            with (self.datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
                conf.write(_SETTINGS + f"unix_socket_directories = '{self._dir()}'\n")
            self._start_on_free_port()
        except BaseException:
            self.stop()
            raise

    def _start_on_free_port(self, attempts: int = 5) -> None:
        # The port is chosen before the server binds it: retry if another process took it.
        for _ in range(attempts):
            self.port = free_port()
            try:
                self._run(
                    "pg_ctl",
                    [
                        *("start", "-D", str(self.datadir), "-l", str(self.logfile)),
                        *("-w", "-t", "60", "-o", f"-p {self.port}"),
                    ],
                )
            except PgClusterError:
                if "already in use" not in self._log_tail():
                    raise
                continue
            self._started = True
            return
        raise PgClusterError(f"no free port after {attempts} attempts:\n{self._log_tail()}")

    def stop(self) -> None:
        """Stop this cluster's server (only it: pg_ctl -D) and remove its directory."""
        try:
            if self._started:
                self._started = False
                try:
                    self._run("pg_ctl", ["stop", "-D", str(self.datadir), "-m", "fast", "-w"])
                except PgClusterError:
                    self._run("pg_ctl", ["stop", "-D", str(self.datadir), "-m", "immediate"])
        finally:
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None

    def create_database(self) -> str:
        """Create a fresh empty database; its DSN."""
        name = f"roost_test_{next(self._names)}"
        self._run("createdb", [*self._client_args(), name], as_server_user=False)
        return self.dsn(name)

    def drop_database(self, dsn: str) -> None:
        """Drop a database made by create_database(), closing its leftover connections."""
        name = dsn.rpartition("/")[2]
        self._run("dropdb", [*self._client_args(), "--force", name], as_server_user=False)

    def _client_args(self) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER]

    def _dir(self) -> Path:
        if self.dir is None:
            raise PgClusterError("the cluster is not started")
        return self.dir

    def _give_dir_to_server_user(self) -> None:
        if not self._as_root:
            return
        if shutil.which("runuser") is None:
            raise PgClusterError("running as root, but runuser (util-linux) is not installed")
        try:
            account = pwd.getpwnam(OS_USER_WHEN_ROOT)
        except KeyError:
            raise PgClusterError(
                f"running as root, and there is no {OS_USER_WHEN_ROOT!r} system user to run "
                "PostgreSQL as (Debian's postgresql package creates it)"
            ) from None
        os.chown(self._dir(), account.pw_uid, account.pw_gid)

    def _run(self, program: str, args: list[str], *, as_server_user: bool = True) -> None:
        command = [str(self.bindir / program), *args]
        if self._as_root and as_server_user:
            command = ["runuser", "-u", OS_USER_WHEN_ROOT, "--", *command]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        # cwd: the server user may not be allowed into the caller's working directory
        result = subprocess.run(
            command,
            cwd=self.dir,
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise PgClusterError(
                f"{' '.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}{self._log_tail()}"
            )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.logfile.read_text(encoding="utf-8", errors="replace")
        except (OSError, PgClusterError):
            return ""
        return "\n".join(text.splitlines()[-lines:])
