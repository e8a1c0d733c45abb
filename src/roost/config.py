"""The configuration file: one TOML file validated into frozen dataclasses (DESIGN.md §8).

``load_config`` reads the file with ``tomllib`` and checks every key: unknown keys, wrong
types and bad values fail at once with the file, the key path and what is allowed, e.g.
``roost.toml: [listen].c2s: "localhost:99999" is not a valid port (1-65535)``. A key whose
feature is not built yet is accepted; ``config_warnings`` says it is ignored.

Relative paths (``data_dir``, ``[tls].cert``, ``[tls].key``) are relative to the directory
of the configuration file, so a server started from anywhere finds the same files.
"""

from __future__ import annotations

import ipaddress
import json
import re
import tomllib
import urllib.parse
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final, TypeVar

from roost import __version__
from roost.jid import JIDError, normalize_domain

LOG_LEVELS: Final = ("debug", "info", "warning", "error")
STORAGE_BACKENDS: Final = ("sqlite", "postgresql")
SECTIONS: Final = (
    "server", "listen", "http", "tls", "storage", "limits", "registration", "services",
    "components", "modules",
)  # fmt: skip

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
    """Resource limits (../shared/reference/limits.md); sizes in bytes, times in seconds."""

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
    enabled: tuple[str, ...] | None = None  # None: every module that is built


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
    release = ".".join(__version__.split(".")[:2])
    return [
        f"{key_path} is set but {what} is not built yet in roost {release}; it is ignored"
        for key_path, what in UNBUILT_FEATURES.items()
        if _feature_is_set(config, key_path)
    ]


# --- reading values -------------------------------------------------------------------

_T = TypeVar("_T")
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
_TOML_POSITION: Final = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _kind(value: object) -> str:
    kinds: list[tuple[type, str]] = [(bool, "a boolean"), (int, "an integer"), (float, "a float")]
    kinds += [(str, "a string"), (list, "an array"), (dict, "a table")]
    return next((name for t, name in kinds if isinstance(value, t)), "a date/time")


class _Table:
    """One TOML table being read: checks keys and types, names the key path in errors."""

    __slots__ = ("data", "file", "section")

    def __init__(self, file: str, section: str, data: object, known: tuple[str, ...]) -> None:
        self.file, self.section = file, section
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: {section}: expected a table, got {_kind(data)}")
        self.data: dict[str, Any] = data
        for name in data:
            if name not in known:
                raise self.error(name, f"unknown key (known keys: {', '.join(known)})")

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(f"{self.file}: {self.section}.{_key(name)}: {message}")

    def typed(self, name: str, kind: type[_T], default: _T) -> _T:
        value = self.data.get(name, default)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            expected = _kind(kind())
            raise self.error(name, f"expected {expected}, got {_kind(value)} ({_show(value)})")
        return value

    def integer(self, name: str, default: int, minimum: int = 1) -> int:
        value = self.typed(name, int, default)
        if value < minimum:
            raise self.error(name, f"{value} is too small (minimum {minimum})")
        return value

    def strings(self, name: str) -> list[str] | None:
        if name not in self.data:
            return None
        value = self.typed(name, list, [])
        for item in value:
            if not isinstance(item, str):
                raise self.error(name, f"expected an array of strings, got {_show(item)}")
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.typed(name, str, default)
        if value.lower() not in allowed:
            raise self.error(name, f"{_show(value)} is not one of {', '.join(allowed)}")
        return value.lower()

    def domain(self, name: str, value: str) -> str:
        try:
            return normalize_domain(value)
        except JIDError as exc:
            raise self.error(name, f"{_show(value)} is not a valid domain: {exc}") from None

    def path(self, name: str, base: Path, default: str) -> Path | None:
        value = self.typed(name, str, default)
        return base / Path(value).expanduser() if value else None

    def endpoint(self, name: str, default: str) -> Endpoint | None:
        value = self.typed(name, str, default)
        if not value:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host:
            raise self.error(name, f'{_show(value)} is not "host:port" (e.g. "127.0.0.1:5222")')
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise self.error(name, f"{_show(value)}: {host} is not an IPv6 address") from None
        elif ":" in host:
            raise self.error(
                name, f'{_show(value)}: write IPv6 addresses in brackets, "[::1]:5222"'
            )
        elif any(c.isspace() for c in host):
            raise self.error(name, f"{_show(value)} is not a valid host")
        if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise self.error(name, f"{_show(value)} is not a valid port (1-65535)")
        return Endpoint(host, int(port))


def _known(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


# --- sections -------------------------------------------------------------------------


def _server(t: _Table, base: Path) -> ServerSection:
    names = t.strings("domains")
    if names is None:
        names = list(ServerSection().domains)
    if not names:
        raise t.error("domains", "at least one domain is required")
    domains = tuple(t.domain("domains", name) for name in names)
    for i, domain in enumerate(domains):
        if domain in domains[:i]:
            raise t.error("domains", f"{_show(domain)} is listed twice")
    data_dir = t.path("data_dir", base, "data")
    if data_dir is None:
        raise t.error("data_dir", "must not be empty")
    return ServerSection(domains, data_dir, t.choice("log_level", "info", LOG_LEVELS))


def _listen(t: _Table) -> ListenSection:
    defaults = ListenSection()
    endpoints: dict[str, Endpoint | None] = {}
    for name in _known(ListenSection):
        default = getattr(defaults, name)
        endpoints[name] = endpoint = t.endpoint(name, str(default) if default else "")
        for other, seen in endpoints.items():
            if endpoint is not None and other != name and seen == endpoint:
                raise t.error(name, f"{endpoint} is also used by [listen].{other}")
    return ListenSection(**endpoints)


_ORIGIN: Final = re.compile(r"https?://[^/\s?#]+")


def _http(t: _Table) -> HttpSection:
    defaults = HttpSection()
    url = t.typed("public_url", str, "").rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if url and (parts.scheme not in ("http", "https") or not parts.netloc or parts.query):
        raise t.error(
            "public_url", f'{_show(url)} is not an http(s) URL (e.g. "https://chat.example.org")'
        )
    proxies = _networks(t, "trusted_proxies", defaults.trusted_proxies)
    metrics_allow = _networks(t, "metrics_allow", defaults.metrics_allow)
    origins = t.strings("cors_origins")
    origins = list(defaults.cors_origins) if origins is None else origins
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise t.error(
                "cors_origins",
                f'{_show(origin)} is not "*" or an origin (e.g. "https://example.org")',
            )
    return HttpSection(
        tls=t.typed("tls", bool, False),
        public_url=url,
        trusted_proxies=tuple(proxies),
        cors_origins=tuple(origins),
        bosh_max_wait=t.integer("bosh_max_wait", defaults.bosh_max_wait),
        bosh_max_inactivity=t.integer("bosh_max_inactivity", defaults.bosh_max_inactivity),
        bosh_sessions_per_ip=t.integer("bosh_sessions_per_ip", defaults.bosh_sessions_per_ip),
        metrics_allow=tuple(metrics_allow),
    )


def _networks(t: _Table, name: str, default: tuple[str, ...]) -> list[str]:
    """An array of IP addresses or networks (``"10.0.0.0/8"``)."""
    values = t.strings(name)
    values = list(default) if values is None else values
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise t.error(
                name, f'{_show(value)} is not an IP address or network (e.g. "10.0.0.0/8")'
            ) from None
    return values


def _tls(t: _Table, base: Path) -> TLSSection:
    cert, key = t.path("cert", base, ""), t.path("key", base, "")
    if (cert is None) != (key is None):
        missing, given = ("key", "cert") if key is None else ("cert", "key")
        raise t.error(missing, f"must be set when [tls].{given} is set")
    return TLSSection(cert, key, t.typed("require_c2s", bool, True))


def _storage(t: _Table) -> StorageSection:
    backend = t.choice("backend", "sqlite", STORAGE_BACKENDS)
    dsn = t.typed("dsn", str, "")
    if backend == "postgresql" and not dsn:
        raise t.error("dsn", 'required when backend is "postgresql" (e.g. "postgresql://...")')
    return StorageSection(backend, dsn)


_LIMIT_MINIMUMS: Final = {"stanza_size": MIN_STANZA_SIZE, "memory_limit": 0}


def _limits(t: _Table) -> LimitsSection:
    values: dict[str, Any] = {}
    for f in fields(LimitsSection):
        if isinstance(f.default, bool):
            values[f.name] = t.typed(f.name, bool, f.default)
        else:
            assert isinstance(f.default, int)
            minimum = _LIMIT_MINIMUMS.get(f.name, 1)
            values[f.name] = t.integer(f.name, f.default, minimum)
    return LimitsSection(**values)


def _services(t: _Table, first_domain: str) -> ServicesSection:
    values = {}
    for name, prefix in (("muc", "conference"), ("pubsub", "pubsub"), ("upload", "upload")):
        value = t.typed(name, str, f"{prefix}.{first_domain}")
        values[name] = t.domain(name, value) if value else ""
    return ServicesSection(**values)


def _components(file: str, data: object) -> dict[str, ComponentSection]:
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: [components]: expected a table, got {_kind(data)}")
    names = _Table(file, "[components]", {}, ())
    components: dict[str, ComponentSection] = {}
    for name, table in data.items():
        domain = names.domain(name, name)
        if domain in components:
            raise names.error(name, f"{_show(domain)} is configured twice")
        t = _Table(file, f"[components.{_key(name)}]", table, ("secret",))
        if "secret" not in t.data:
            raise t.error("secret", "required (the shared secret of XEP-0114)")
        secret = t.typed("secret", str, "")
        if not secret:
            raise t.error("secret", "must not be empty")
        components[domain] = ComponentSection(secret)
    return components


def _modules(t: _Table) -> ModulesSection:
    names = t.strings("enabled")
    if names is None:
        return ModulesSection(None)
    for i, name in enumerate(names):
        if not name.isidentifier():
            raise t.error("enabled", f"{_show(name)} is not a module name")
        if name in names[:i]:
            raise t.error("enabled", f"{_show(name)} is listed twice")
    return ModulesSection(tuple(names))


def _check_distinct_domains(
    file: str, server: ServerSection, services: ServicesSection, components: dict[str, Any]
) -> None:
    """A domain is served by one thing only: a host, a built-in service or a component."""
    owner = dict.fromkeys(server.domains, "[server].domains")
    for name in _known(ServicesSection):
        domain = getattr(services, name)
        if domain in owner:
            raise ConfigError(
                f"{file}: [services].{name}: {_show(domain)} is already used by {owner[domain]}"
            )
        if domain:
            owner[domain] = f"[services].{name}"
    for domain in components:
        if domain in owner:
            hint = (
                f' (set {owner[domain]} = "" to disable it)' if "services" in owner[domain] else ""
            )
            raise ConfigError(
                f"{file}: [components.{_key(domain)}]: {_show(domain)} is already used by "
                f"{owner[domain]}{hint}"
            )


def _parse(path: Path, file: str, data: dict[str, Any]) -> Config:
    for name, value in data.items():
        if name not in SECTIONS:
            known = f"known sections: {', '.join(SECTIONS)}"
            if isinstance(value, dict):
                raise ConfigError(f"{file}: [{_key(name)}]: unknown section ({known})")
            raise ConfigError(f"{file}: {_key(name)}: unknown key outside any [section] ({known})")
    base = path.absolute().parent

    def table(name: str, cls: type) -> _Table:
        return _Table(file, f"[{name}]", data.get(name, {}), _known(cls))

    server = _server(table("server", ServerSection), base)
    services = _services(table("services", ServicesSection), server.domains[0])
    components = _components(file, data.get("components", {}))
    _check_distinct_domains(file, server, services, components)
    return Config(
        path=path.absolute(),
        server=server,
        listen=_listen(table("listen", ListenSection)),
        http=_http(table("http", HttpSection)),
        tls=_tls(table("tls", TLSSection), base),
        storage=_storage(table("storage", StorageSection)),
        limits=_limits(table("limits", LimitsSection)),
        registration=RegistrationSection(
            table("registration", RegistrationSection).typed("open", bool, False)
        ),
        services=services,
        components=components,
        modules=_modules(table("modules", ModulesSection)),
    )


def _toml_error(file: str, text: str, exc: tomllib.TOMLDecodeError) -> str:
    message = str(exc)
    found = _TOML_POSITION.search(message)
    if found:
        line, column = found.groups()
        message = message[: found.start()]
    else:  # "(at end of document)"
        message = message.replace(" (at end of document)", "")
        lines = text.split("\n")
        line, column = str(len(lines)), str(len(lines[-1]) + 1)
    return f"{file}:{line}:{column}: invalid TOML: {message}"


def load_config(path: Path) -> Config:
    """Read and validate the configuration file; raise ConfigError naming what is wrong."""
    file = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{file}: file not found (`roost init -c {file}` writes one)") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the file: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{file}:{line}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_error(file, text, exc)) from None
    return _parse(path, file, data)


def default_config_text(domain: str = "localhost") -> str:
    """The commented configuration file that `roost init` writes, serving ``domain``."""
    try:
        domain = normalize_domain(domain)
    except JIDError as exc:
        raise ConfigError(f"{domain!r} is not a valid domain: {exc}") from None
    return _DEFAULT_CONFIG.replace("@DOMAIN@", domain)


_DEFAULT_CONFIG: Final = """\
# roost configuration (TOML). Reference: docs/configuration.md.
# Relative paths are relative to the directory of this file.

[server]
domains = ["@DOMAIN@"]           # virtual hosts served (at least one)
data_dir = "data"                # SQLite database, generated certificates, uploads
log_level = "info"               # debug | info | warning | error

[listen]                         # "host:port" ("[::1]:5222" for IPv6); "" disables
c2s = "127.0.0.1:5222"           # clients, STARTTLS (RFC 6120)
c2s_tls = "127.0.0.1:5223"       # clients, direct TLS (XEP-0368)
s2s = "127.0.0.1:5269"           # other servers (federation; not built yet)
component = "127.0.0.1:5347"     # external components (XEP-0114; not built yet)
http = "127.0.0.1:5280"          # WebSocket, BOSH, XEP-0156 host-meta ([http] below)

[http]                           # the web-client endpoints of [listen].http
tls = false                      # serve HTTPS with the [tls] certificate
public_url = ""                  # "https://chat.@DOMAIN@" for host-meta; "": from each request
trusted_proxies = ["127.0.0.1", "::1"]  # reverse proxies whose X-Forwarded-* are believed
cors_origins = ["*"]             # web origins allowed to use BOSH, WebSocket and host-meta
bosh_max_wait = 60               # longest a BOSH request is held (seconds)
bosh_max_inactivity = 60         # a BOSH session without a request this long ends
bosh_sessions_per_ip = 10        # BOSH sessions at once from one IP address
metrics_allow = ["127.0.0.0/8", "::1"]  # addresses or networks that may read /metrics

[tls]
cert = ""                        # PEM certificate chain; "" = generate a self-signed
key = ""                         # certificate for every domain (and *.domain) in data_dir
require_c2s = true               # clients must start TLS before authenticating

[storage]
backend = "sqlite"               # sqlite (a file in data_dir) | postgresql
dsn = ""                         # postgresql only: "postgresql://user:password@host/db"

[limits]                         # sizes in bytes, times in seconds
stanza_size = 262144             # largest stanza after authentication (at least 10000)
stanza_size_preauth = 10000      # largest stanza before authentication
header_size = 4096               # largest stream header
depth = 64                       # deepest element nesting in a stanza
depth_preauth = 8                # ... before authentication
elements = 10000                 # most elements in one stanza
elements_preauth = 32            # ... before authentication
preauth_timeout = 60             # close connections not authenticated after this time
idle_timeout = 300               # ping an idle client after this time
idle_close_after = 60            # and close it when no answer came this much later
connections_per_ip = 20          # unauthenticated connections from one IP address
connection_rate_per_ip = 10      # new connections per second from one IP address
auth_failures_per_stream = 5     # failed authentications before the stream is closed
auth_failures_per_ip = 20        # failed authentications per hour before an IP is banned
auth_ban_time = 3600             # how long such a ban lasts
resources_per_account = 10       # sessions one account may have at once
offline_messages = 1000          # messages stored per user while offline (XEP-0160)
offline_expire_after = 2592000   # offline messages older than this (30 days) are deleted
vcard_size = 65536               # largest vCard a user may store (XEP-0054)
exempt_loopback = false          # true: no per-IP limits for 127.0.0.1 and ::1
attributes = 64                  # most attributes on one element
namespace_declarations = 32      # most namespace declarations on one element
read_rate = 10240                # bytes per second read from one client connection
read_burst = 2                   # seconds of read_rate a client may send at once
send_queue_stanzas = 10000       # stanzas waiting for a client that does not read
send_queue_bytes = 8388608       # bytes waiting for it; past either it is disconnected
memory_limit = 0                 # refuse new connections above this many bytes in use
                                 # (0: 80 % of the RAM or cgroup limit)

[registration]
open = false                     # in-band registration by anyone (XEP-0077; not built yet)

[services]                       # built-in services; "" disables (not built yet)
muc = "conference.@DOMAIN@"      # multi-user chat (XEP-0045)
pubsub = "pubsub.@DOMAIN@"       # publish-subscribe (XEP-0060)
upload = "upload.@DOMAIN@"       # HTTP file upload (XEP-0363)

# External components (XEP-0114; not built yet), one table per component domain:
# [components."gateway.@DOMAIN@"]
# secret = "a long random secret"

[modules]
# enabled = ["roster", "presence", "message"]   # absent: every module that is built
"""
