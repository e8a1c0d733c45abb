"""The configuration file: one TOML file validated into the frozen dataclasses of
``roost.config.schema`` (docs/configuration.md).

``load_config`` reads the file with ``tomllib`` and checks every key: unknown keys, wrong
types and bad values fail at once with the file, the key path and what is allowed, e.g.
``roost.toml: [listen].c2s: "localhost:99999" is not a valid port (1-65535)``. A key whose
feature is not built yet is accepted; ``config_warnings`` says it is ignored.

Relative paths (``data_dir``, ``[tls].cert``, ``[tls].key``) are relative to the directory
of the configuration file, so a server started from anywhere finds the same files.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
import urllib.parse
from dataclasses import fields
from pathlib import Path
from typing import Any, Final

from roost.config.schema import (
    LOG_LEVELS,
    MIN_STANZA_SIZE,
    SECTIONS,
    STORAGE_BACKENDS,
    ComponentSection,
    Config,
    ConfigError,
    Endpoint,
    HttpSection,
    LimitsSection,
    ListenSection,
    ModulesSection,
    RegistrationSection,
    ServerSection,
    ServicesSection,
    StorageSection,
    TLSSection,
)
from roost.config.table import Table, kind_of, known_keys, show, toml_key

_TOML_POSITION: Final = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")

# --- sections -------------------------------------------------------------------------


def _server(t: Table, base: Path) -> ServerSection:
    names = t.strings("domains")
    if names is None:
        names = list(ServerSection().domains)
    if not names:
        raise t.error("domains", "at least one domain is required")
    domains = tuple(t.domain("domains", name) for name in names)
    for i, domain in enumerate(domains):
        if domain in domains[:i]:
            raise t.error("domains", f"{show(domain)} is listed twice")
    data_dir = t.path("data_dir", base, "data")
    if data_dir is None:
        raise t.error("data_dir", "must not be empty")
    return ServerSection(domains, data_dir, t.choice("log_level", "info", LOG_LEVELS))


def _listen(t: Table) -> ListenSection:
    defaults = ListenSection()
    endpoints: dict[str, Endpoint | None] = {}
    for name in known_keys(ListenSection):
        default = getattr(defaults, name)
        endpoints[name] = endpoint = t.endpoint(name, str(default) if default else "")
        for other, seen in endpoints.items():
            if endpoint is not None and other != name and seen == endpoint:
                raise t.error(name, f"{endpoint} is also used by [listen].{other}")
    return ListenSection(**endpoints)


_ORIGIN: Final = re.compile(r"https?://[^/\s?#]+")


def _http(t: Table) -> HttpSection:
    defaults = HttpSection()
    url = t.typed("public_url", str, "").rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if url and (parts.scheme not in ("http", "https") or not parts.netloc or parts.query):
        raise t.error(
            "public_url", f'{show(url)} is not an http(s) URL (e.g. "https://chat.example.org")'
        )
    proxies = _networks(t, "trusted_proxies", defaults.trusted_proxies)
    metrics_allow = _networks(t, "metrics_allow", defaults.metrics_allow)
    origins = t.strings("cors_origins")
    origins = list(defaults.cors_origins) if origins is None else origins
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise t.error(
                "cors_origins",
                f'{show(origin)} is not "*" or an origin (e.g. "https://example.org")',
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


def _networks(t: Table, name: str, default: tuple[str, ...]) -> list[str]:
    """An array of IP addresses or networks (``"10.0.0.0/8"``)."""
    values = t.strings(name)
    values = list(default) if values is None else values
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise t.error(
                name, f'{show(value)} is not an IP address or network (e.g. "10.0.0.0/8")'
            ) from None
    return values


def _tls(t: Table, base: Path) -> TLSSection:
    cert, key = t.path("cert", base, ""), t.path("key", base, "")
    if (cert is None) != (key is None):
        missing, given = ("key", "cert") if key is None else ("cert", "key")
        raise t.error(missing, f"must be set when [tls].{given} is set")
    return TLSSection(cert, key, t.typed("require_c2s", bool, True))


def _storage(t: Table) -> StorageSection:
    backend = t.choice("backend", "sqlite", STORAGE_BACKENDS)
    dsn = t.typed("dsn", str, "")
    if backend == "postgresql" and not dsn:
        raise t.error("dsn", 'required when backend is "postgresql" (e.g. "postgresql://...")')
    return StorageSection(backend, dsn)


_LIMIT_MINIMUMS: Final = {"stanza_size": MIN_STANZA_SIZE, "memory_limit": 0}


def _limits(t: Table) -> LimitsSection:
    values: dict[str, Any] = {}
    for f in fields(LimitsSection):
        if isinstance(f.default, bool):
            values[f.name] = t.typed(f.name, bool, f.default)
        else:
            assert isinstance(f.default, int)
            minimum = _LIMIT_MINIMUMS.get(f.name, 1)
            values[f.name] = t.integer(f.name, f.default, minimum)
    return LimitsSection(**values)


def _services(t: Table, first_domain: str) -> ServicesSection:
    values = {}
    for name, prefix in (("muc", "conference"), ("pubsub", "pubsub"), ("upload", "upload")):
        value = t.typed(name, str, f"{prefix}.{first_domain}")
        values[name] = t.domain(name, value) if value else ""
    return ServicesSection(**values)


def _components(file: str, data: object) -> dict[str, ComponentSection]:
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: [components]: expected a table, got {kind_of(data)}")
    names = Table(file, "[components]", {}, ())
    components: dict[str, ComponentSection] = {}
    for name, table in data.items():
        domain = names.domain(name, name)
        if domain in components:
            raise names.error(name, f"{show(domain)} is configured twice")
        t = Table(file, f"[components.{toml_key(name)}]", table, ("secret",))
        if "secret" not in t.data:
            raise t.error("secret", "required (the shared secret of XEP-0114)")
        secret = t.typed("secret", str, "")
        if not secret:
            raise t.error("secret", "must not be empty")
        components[domain] = ComponentSection(secret)
    return components


def _modules(file: str, data: object) -> ModulesSection:
    """``[modules].enabled``, and the ``[modules.NAME]`` tables kept as they are: each is
    checked by its module's ``Options`` when the server loads the module."""
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: [modules]: expected a table, got {kind_of(data)}")
    tables: dict[str, dict[str, Any]] = {}
    for name, value in data.items():
        if name == "enabled":
            continue
        if not isinstance(value, dict):
            raise ConfigError(
                f"{file}: [modules].{toml_key(name)}: unknown key (known keys: enabled; "
                "the options of a module go in a [modules.NAME] table)"
            )
        if not name.isidentifier():
            raise ConfigError(
                f"{file}: [modules.{toml_key(name)}]: {show(name)} is not a module name"
            )
        tables[name] = value
    t = Table(
        file, "[modules]", {"enabled": data["enabled"]} if "enabled" in data else {}, ("enabled",)
    )
    names = t.strings("enabled")
    if names is None:
        return ModulesSection(None, tables)
    for i, name in enumerate(names):
        if not name.isidentifier():
            raise t.error("enabled", f"{show(name)} is not a module name")
        if name in names[:i]:
            raise t.error("enabled", f"{show(name)} is listed twice")
    return ModulesSection(tuple(names), tables)


def _check_distinct_domains(
    file: str, server: ServerSection, services: ServicesSection, components: dict[str, Any]
) -> None:
    """A domain is served by one thing only: a host, a built-in service or a component."""
    owner = dict.fromkeys(server.domains, "[server].domains")
    for name in known_keys(ServicesSection):
        domain = getattr(services, name)
        if domain in owner:
            raise ConfigError(
                f"{file}: [services].{name}: {show(domain)} is already used by {owner[domain]}"
            )
        if domain:
            owner[domain] = f"[services].{name}"
    for domain in components:
        if domain in owner:
            hint = (
                f' (set {owner[domain]} = "" to disable it)' if "services" in owner[domain] else ""
            )
            raise ConfigError(
                f"{file}: [components.{toml_key(domain)}]: {show(domain)} is already used by "
                f"{owner[domain]}{hint}"
            )


def _parse(path: Path, file: str, data: dict[str, Any]) -> Config:
    for name, value in data.items():
        if name not in SECTIONS:
            known = f"known sections: {', '.join(SECTIONS)}"
            if isinstance(value, dict):
                raise ConfigError(f"{file}: [{toml_key(name)}]: unknown section ({known})")
            raise ConfigError(
                f"{file}: {toml_key(name)}: unknown key outside any [section] ({known})"
            )
    base = path.absolute().parent

    def table(name: str, cls: type) -> Table:
        return Table(file, f"[{name}]", data.get(name, {}), known_keys(cls))

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
        modules=_modules(file, data.get("modules", {})),
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
