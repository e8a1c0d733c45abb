"""The two servers under test, each one process on a free loopback port, started and stopped
by PID, with its memory and CPU read from /proc.

roost runs from this checkout (``python -m roost run``) with a throw-away data directory;
with ``--baseline SRC`` a second roost runs from another source tree (``SRC`` on
``PYTHONPATH``, e.g. ``git worktree add /tmp/base <commit>`` then ``/tmp/base/src``), so a
change is measured against the code before it in the same run.
Prosody runs from the Debian package with its own configuration file and data directory in
the bench's work directory: ``prosody --config FILE -F`` never reads /etc/prosody and never
touches a Prosody the machine may run as a service. Prosody refuses to run as root, so as
root the bench starts it as the package's ``prosody`` user (and hands it its directory);
otherwise it runs as us. Either way the PID we hold is Prosody's own.

Both get the same certificate (roost's generated self-signed one), TLS required before
authentication, SCRAM-SHA-1 against stored keys, and the same set of IM features: roster,
presence, messages, offline storage, disco, ping, version, time, blocking, vCard, private
XML, last activity. Neither has per-connection rate limits (roost's loopback exemption and a
read rate far above the load; Prosody without mod_limits).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

from bench.provision import Population, write_prosody_data, write_xep0227
from roost.auth.credentials import ScramKeys
from roost.config import load_config
from roost.tls import ensure_certificate

START_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 20.0
_TICK: Final = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_kib(pid: int) -> int:
    """Resident memory of a process in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


class BenchServer:
    """A server process the bench starts, measures and stops."""

    name = "server"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = directory / "server.log"

    @property
    def pid(self) -> int:
        """The process id of the running server."""
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.proc.pid

    def command(self) -> list[str]:
        """The command line that starts the server."""
        raise NotImplementedError

    def ready(self, log_text: str) -> bool:
        """Whether the server accepts clients now."""
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            return True
        return False

    def user(self) -> str | None:
        """The user to run the process as (None: as we run)."""
        return None

    def env(self) -> dict[str, str] | None:
        """The process environment (None: ours)."""
        return None

    def start(self) -> None:
        """Start the process and wait until it serves."""
        seen = self.log.stat().st_size if self.log.exists() else 0
        user = self.user()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=self.env(),
                user=user,
                group=user,
                extra_groups=[] if user else None,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail(seen)}")
            if self.ready(self.log_tail(seen)):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n{self.log_tail(seen)}")

    def log_tail(self, since: int = 0) -> str:
        """What the server logged from byte ``since`` on."""
        with contextlib.suppress(FileNotFoundError), self.log.open("rb") as file:
            file.seek(since)
            return file.read().decode(errors="replace")[-5000:]
        return ""

    def stop(self) -> None:
        """SIGTERM the process we started, SIGKILL it if it does not end."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def rss_kib(self) -> int:
        """The server's resident memory, KiB."""
        return rss_kib(self.pid)

    def cpu_seconds(self) -> float:
        """The server's CPU time so far, seconds."""
        return cpu_seconds(self.pid)


class RoostServer(BenchServer):
    """roost from this checkout (or from ``source``), provisioned with ``roost import``."""

    def __init__(self, directory: Path, source: Path | None = None, name: str = "roost") -> None:
        super().__init__(directory)
        self.config = directory / "roost.toml"
        self.source = source
        self.name = name

    def env(self) -> dict[str, str] | None:
        if self.source is None:
            return None
        return {**os.environ, "PYTHONPATH": str(self.source)}

    def command(self) -> list[str]:
        return [sys.executable, "-m", "roost", "run", "-c", str(self.config)]

    def ready(self, log_text: str) -> bool:
        return "roost ready" in log_text

    def prepare(self, population: Population, keys: ScramKeys) -> dict[str, float]:
        """Write the configuration and certificate, import every account; what it took."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f'[server]\ndomains = ["{population.domain}"]\ndata_dir = "data"\n'
            'log_level = "info"\n'
            f'[listen]\nc2s = "127.0.0.1:{self.port}"\nc2s_tls = ""\ns2s = ""\n'
            'component = ""\nhttp = ""\n'
            "[tls]\nrequire_c2s = true\n"
            '[services]\nmuc = ""\npubsub = ""\nupload = ""\n'
            "[limits]\nexempt_loopback = true\nread_rate = 1000000000\n"
            "idle_timeout = 3600\n"
        )
        ensure_certificate(load_config(self.config))
        started = time.monotonic()
        accounts = write_xep0227(population, keys, self.directory / "users.xml")
        written = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "roost", "import", "-c", str(self.config), "users.xml"],
            cwd=self.directory,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"roost import failed:\n{done.stdout}\n{done.stderr[-3000:]}")
        return {
            "accounts": accounts,
            "roster_items": population.roster_items,
            "file_seconds": written - started,
            "import_seconds": time.monotonic() - written,
        }

    @property
    def certificate(self) -> tuple[Path, Path]:
        """The generated certificate and key (for Prosody to use the same)."""
        data = self.directory / "data"
        return data / "roost.crt", data / "roost.key"


PROSODY_MODULES: Final = (
    "roster", "saslauth", "tls", "disco", "ping", "version", "time", "blocklist", "vcard",
    "private", "lastactivity",
)  # fmt: skip


_PROSODY_USER: Final = "prosody"  # created by the Debian package


def _prosody_user_exists() -> bool:
    try:
        pwd.getpwnam(_PROSODY_USER)
    except KeyError:
        return False
    return True


def prosody_installed() -> bool:
    """Whether the prosody command is there."""
    return shutil.which("prosody") is not None


def prosody_version() -> str:
    """The installed Debian package's version, or '?'."""
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "prosody"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "?"


class ProsodyServer(BenchServer):
    """Prosody from Debian with its own config and data directory, provisioned by files."""

    name = "prosody"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.config = directory / "prosody.cfg.lua"

    def command(self) -> list[str]:
        return ["prosody", "--config", str(self.config), "-F"]

    def user(self) -> str | None:
        """Prosody refuses to run as root: then it runs as the package's 'prosody' user."""
        return _PROSODY_USER if os.geteuid() == 0 and _prosody_user_exists() else None

    def prepare(
        self, population: Population, keys: ScramKeys, cert: tuple[Path, Path]
    ) -> dict[str, float]:
        """Write the configuration, certificate and storage files; what it took."""
        started = time.monotonic()
        certs = self.directory / "certs"
        certs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cert[0], certs / f"{population.domain}.crt")
        shutil.copyfile(cert[1], certs / f"{population.domain}.key")
        modules = "; ".join(f'"{m}"' for m in PROSODY_MODULES)
        d = self.directory
        self.config.write_text(
            "-- written by roost's bench: one process, its own data directory and port\n"
            f'pidfile = "{d}/prosody.pid"\ndata_path = "{d}/data"\n'
            f'interfaces = {{ "127.0.0.1" }}\nc2s_ports = {{ {self.port} }}\n'
            'network_backend = "epoll"\n'
            f'log = {{ {{ levels = {{ min = "warn" }}, to = "file", '
            f'filename = "{d}/prosody.log" }} }}\n'
            'authentication = "internal_hashed"\nstorage = "internal"\n'
            "c2s_require_encryption = true\nallow_registration = false\n"
            f"modules_enabled = {{ {modules} }}\n"
            'modules_disabled = { "s2s"; "s2s_auth_certs" }\n'
            f'certificates = "{certs}"\n'
            f'ssl = {{ certificate = "{certs}/{population.domain}.crt"; '
            f'key = "{certs}/{population.domain}.key" }}\n'
            f'VirtualHost "{population.domain}"\n'
        )
        accounts = write_prosody_data(population, keys, self.directory / "data")
        self._hand_over()
        return {
            "accounts": accounts,
            "roster_items": population.roster_items,
            "write_seconds": time.monotonic() - started,
        }

    def _hand_over(self) -> None:
        """When Prosody runs as the 'prosody' user, give it its directory."""
        if self.user() is None:
            return
        user = pwd.getpwnam(_PROSODY_USER)
        for folder in (self.directory, self.directory.parent):  # the bench's own folders
            folder.chmod(folder.stat().st_mode | 0o711)  # traversable for the prosody user
        for root, dirs, files in os.walk(self.directory):
            os.chown(root, user.pw_uid, user.pw_gid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid)
