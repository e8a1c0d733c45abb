"""The typed sections of the configuration file (docs/configuration.md): frozen dataclasses whose
defaults are those of an empty file, and the keys accepted before their feature is built.

``roost.config.load`` fills them from TOML; code that runs the server reads only these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from roost import __version__

LOG_LEVELS: Final = ("debug", "info", "warning", "error")
STORAGE_BACKENDS: Final = ("sqlite", "postgresql")
SECTIONS: Final = (
    "server", "listen", "http", "tls", "storage", "limits", "registration", "services",
    "components", "modules",
)  # fmt: skip

RELEASE: Final = ".".join(__version__.split(".")[:2])  # "0.1", as warnings name it
SQLITE_FILE: Final = "roost.sqlite"

# RFC 6120 §13.12 (4): a server must accept stanzas of at least 10 000 bytes.
MIN_STANZA_SIZE: Final = 10_000


class ConfigError(Exception):
    """The configuration is unusable; the message names the file and the key path."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A listening address: ``127.0.0.1:5222`` or ``[::1]:5222``."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ServerSection:
    domains: tuple[str, ...] = ("localhost",)
    data_dir: Path = Path("data")
    log_level: str = "info"


@dataclass(frozen=True, slots=True)
class ListenSection:
    """Listening endpoints; ``None`` means the listener is disabled (``""`` in the file)."""

    c2s: Endpoint | None = Endpoint("127.0.0.1", 5222)
    c2s_tls: Endpoint | None = Endpoint("127.0.0.1", 5223)
    s2s: Endpoint | None = Endpoint("127.0.0.1", 5269)
    component: Endpoint | None = Endpoint("127.0.0.1", 5347)
    http: Endpoint | None = Endpoint("127.0.0.1", 5280)


@dataclass(frozen=True, slots=True)
class HttpSection:
    """The web-client endpoints of ``[listen].http``: WebSocket, BOSH, XEP-0156, CORS."""

    tls: bool = False
    public_url: str = ""  # "": the scheme and Host of each request
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")  # IP addresses or networks
    cors_origins: tuple[str, ...] = ("*",)
    bosh_max_wait: int = 60
    bosh_max_inactivity: int = 60
    bosh_sessions_per_ip: int = 10
    metrics_allow: tuple[str, ...] = ("127.0.0.0/8", "::1")  # who may read /metrics; (): nobody


@dataclass(frozen=True, slots=True)
class TLSSection:
    """``cert``/``key`` are ``None`` when a self-signed certificate is to be generated."""

    cert: Path | None = None
    key: Path | None = None
    require_c2s: bool = True


@dataclass(frozen=True, slots=True)
class StorageSection:
    backend: str = "sqlite"
    dsn: str = ""


@dataclass(frozen=True, slots=True)
class LimitsSection:
    """Resource limits (docs/configuration.md [limits]); sizes in bytes, times in seconds."""

    stanza_size: int = 262_144
    stanza_size_preauth: int = 10_000
    header_size: int = 4096
    depth: int = 64
    depth_preauth: int = 8
    elements: int = 10_000
    elements_preauth: int = 32
    preauth_timeout: int = 60
    idle_timeout: int = 300
    idle_close_after: int = 60
    connections_per_ip: int = 20
    connection_rate_per_ip: int = 10
    auth_failures_per_stream: int = 5
    auth_failures_per_ip: int = 20
    auth_ban_time: int = 3600
    resources_per_account: int = 10
    offline_messages: int = 1000
    offline_expire_after: int = 30 * 86400
    vcard_size: int = 65536
    exempt_loopback: bool = False
    attributes: int = 64
    namespace_declarations: int = 32
    read_rate: int = 10_240
    read_burst: int = 2
    send_queue_stanzas: int = 10_000
    send_queue_bytes: int = 8 * 1024 * 1024
    memory_limit: int = 0  # bytes; 0: 80 % of the memory the process may use


@dataclass(frozen=True, slots=True)
class RegistrationSection:
    open: bool = False


@dataclass(frozen=True, slots=True)
class ServicesSection:
    """Service domains; ``""`` disables. In a file, an absent key defaults to
    ``conference.``/``pubsub.``/``upload.`` + the first served domain."""

    muc: str = ""
    pubsub: str = ""
    upload: str = ""


@dataclass(frozen=True, slots=True)
class ComponentSection:
    secret: str


@dataclass(frozen=True, slots=True)
class ModulesSection:
    """``[modules].enabled`` and the ``[modules.NAME]`` tables as they are in the file.

    The tables are checked by each module's ``Options`` (``roost.config.options``) when the
    module is loaded: only the server knows which modules exist.
    """

    enabled: tuple[str, ...] | None = None  # None: every module that is built
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name -> table


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    server: ServerSection = field(default_factory=ServerSection)
    listen: ListenSection = field(default_factory=ListenSection)
    http: HttpSection = field(default_factory=HttpSection)
    tls: TLSSection = field(default_factory=TLSSection)
    storage: StorageSection = field(default_factory=StorageSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    registration: RegistrationSection = field(default_factory=RegistrationSection)
    services: ServicesSection = field(default_factory=ServicesSection)
    components: dict[str, ComponentSection] = field(default_factory=dict)
    modules: ModulesSection = field(default_factory=ModulesSection)

    @property
    def sqlite_path(self) -> Path:
        """The database file of the "sqlite" storage backend, in the data directory."""
        return self.server.data_dir / SQLITE_FILE


# Features accepted in the file but not built yet: key path -> what the feature is.
# Remove an entry when its feature lands; config_warnings follows.
UNBUILT_FEATURES: Final[dict[str, str]] = {
    "[listen].s2s": "server-to-server federation",
    "[listen].component": "the external component listener (XEP-0114)",
    "[services].muc": "multi-user chat (XEP-0045)",
    "[services].pubsub": "the publish-subscribe service (XEP-0060)",
    "[services].upload": "HTTP file upload (XEP-0363)",
    "[components]": "external components (XEP-0114)",
    "[registration].open": "in-band registration (XEP-0077)",
}


def _feature_is_set(config: Config, key_path: str) -> bool:
    match key_path:
        case "[components]":
            return bool(config.components)
        case "[registration].open":
            return config.registration.open
    section, _, key = key_path.partition(".")
    return bool(getattr(getattr(config, section.strip("[]")), key))


def config_warnings(config: Config) -> list[str]:
    """One plain-words warning per configured feature that this version does not build."""
    return [
        f"{key_path} is set but {what} is not built yet in roost {RELEASE}; it is ignored"
        for key_path, what in UNBUILT_FEATURES.items()
        if _feature_is_set(config, key_path)
    ]
