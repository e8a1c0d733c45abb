"""The configuration file: defaults, every key of DESIGN.md §8, and the error messages."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from roost.config import (
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
    config_warnings,
    default_config_text,
    load_config,
)


def write(tmp_path: Path, text: str, name: str = "roost.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def expected_defaults(path: Path) -> Config:
    return Config(
        path=path,
        server=ServerSection(("localhost",), path.parent / "data", "info"),
        services=ServicesSection("conference.localhost", "pubsub.localhost", "upload.localhost"),
    )


def test_default_config_text_loads_to_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, default_config_text())
    assert load_config(path) == expected_defaults(path)


def test_empty_file_gives_the_same_defaults_as_the_default_text(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    assert load_config(path) == expected_defaults(path)


def test_default_config_text_serves_the_given_domain(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, default_config_text("Example.ORG")))
    assert config.server.domains == ("example.org",)
    assert config.services == ServicesSection(
        "conference.example.org", "pubsub.example.org", "upload.example.org"
    )


def test_default_config_text_refuses_an_invalid_domain() -> None:
    with pytest.raises(ConfigError, match="not a valid domain"):
        default_config_text("not a domain")


def test_default_config_text_shows_where_module_options_go() -> None:
    text = default_config_text()
    assert "\n# [modules.NAME]\n# key = value\n" in text
    assert text.index("[modules]\n") < text.index("# [modules.NAME]")


def test_the_default_file_and_every_other_data_file_are_package_data() -> None:
    """A wheel carries what `roost init` writes (and the migrations)."""
    root = Path(__file__).resolve().parents[3]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["roost"]
    package = root / "src/roost"
    data = [
        p.relative_to(package)
        for p in package.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc")
    ]
    assert Path("config/default.toml") in data
    assert [str(p) for p in data if not any(p.match(g) for g in globs)] == []


def test_default_limits_are_those_of_the_limits_reference() -> None:
    assert LimitsSection() == LimitsSection(
        stanza_size=262144, stanza_size_preauth=10000, header_size=4096, depth=64,
        depth_preauth=8, elements=10000, elements_preauth=32, preauth_timeout=60,
        idle_timeout=300, idle_close_after=60, connections_per_ip=20,
        connection_rate_per_ip=10, auth_failures_per_stream=5, auth_failures_per_ip=20,
        auth_ban_time=3600, resources_per_account=10, offline_messages=1000,
        offline_expire_after=2592000, vcard_size=65536, exempt_loopback=False,
        attributes=64, namespace_declarations=32, read_rate=10240, read_burst=2,
        send_queue_stanzas=10000, send_queue_bytes=8388608, memory_limit=0,
    )  # fmt: skip


def test_metrics_are_readable_from_loopback_only_by_default() -> None:
    assert HttpSection().metrics_allow == ("127.0.0.0/8", "::1")


FULL_CONFIG = """
[server]
domains = ["example.org", "Example.NET"]
data_dir = "/var/lib/roost"
log_level = "DEBUG"

[listen]
c2s = "0.0.0.0:15222"
c2s_tls = "[::1]:15223"
s2s = ""
component = "localhost:15347"
http = "[::]:15280"

[http]
tls = true
public_url = "https://chat.example.org/"
trusted_proxies = ["10.0.0.0/8", "::1"]
cors_origins = ["https://example.org", "http://localhost:8080"]
bosh_max_wait = 30
bosh_max_inactivity = 90
bosh_sessions_per_ip = 4
metrics_allow = ["10.1.0.0/16"]

[tls]
cert = "certs/fullchain.pem"
key = "/etc/roost/privkey.pem"
require_c2s = false

[storage]
backend = "postgresql"
dsn = "postgresql://roost@db/roost"

[limits]
stanza_size = 100000
stanza_size_preauth = 5000
header_size = 2048
depth = 32
depth_preauth = 6
elements = 5000
elements_preauth = 16
preauth_timeout = 30
idle_timeout = 600
idle_close_after = 30
connections_per_ip = 5
connection_rate_per_ip = 2
auth_failures_per_stream = 3
auth_failures_per_ip = 10
auth_ban_time = 600
resources_per_account = 4
offline_messages = 50
offline_expire_after = 86400
vcard_size = 8192
exempt_loopback = true
attributes = 20
namespace_declarations = 10
read_rate = 4096
read_burst = 3
send_queue_stanzas = 500
send_queue_bytes = 1048576
memory_limit = 1073741824

[registration]
open = true

[services]
muc = "rooms.example.org"
pubsub = ""
upload = "upload.example.org"

[components."gateway.example.org"]
secret = "s3cret"

[components."bridge.example.org"]
secret = "other"

[modules]
enabled = ["roster", "presence"]

[modules.mam]
default = "roster"
archive_days = 30
"""


def test_every_key_of_the_contract_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_CONFIG)
    assert load_config(path) == Config(
        path=path,
        server=ServerSection(("example.org", "example.net"), Path("/var/lib/roost"), "debug"),
        listen=ListenSection(
            c2s=Endpoint("0.0.0.0", 15222),
            c2s_tls=Endpoint("::1", 15223),
            s2s=None,
            component=Endpoint("localhost", 15347),
            http=Endpoint("::", 15280),
        ),
        http=HttpSection(
            tls=True,
            public_url="https://chat.example.org",
            trusted_proxies=("10.0.0.0/8", "::1"),
            cors_origins=("https://example.org", "http://localhost:8080"),
            bosh_max_wait=30,
            bosh_max_inactivity=90,
            bosh_sessions_per_ip=4,
            metrics_allow=("10.1.0.0/16",),
        ),
        tls=TLSSection(tmp_path / "certs/fullchain.pem", Path("/etc/roost/privkey.pem"), False),
        storage=StorageSection("postgresql", "postgresql://roost@db/roost"),
        limits=LimitsSection(
            100000,
            5000,
            2048,
            32,
            6,
            5000,
            16,
            30,
            600,
            30,
            5,
            2,
            3,
            10,
            600,
            4,
            50,
            86400,
            8192,
            True,
            20,
            10,
            4096,
            3,
            500,
            1048576,
            1073741824,
        ),
        registration=RegistrationSection(open=True),
        services=ServicesSection("rooms.example.org", "", "upload.example.org"),
        components={
            "gateway.example.org": ComponentSection("s3cret"),
            "bridge.example.org": ComponentSection("other"),
        },
        modules=ModulesSection(
            ("roster", "presence"), {"mam": {"default": "roster", "archive_days": 30}}
        ),
    )


def test_data_dir_is_relative_to_the_directory_of_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    write(tmp_path / "etc", '[server]\ndata_dir = "../var/roost"\n')
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("etc/roost.toml"))
    assert config.server.data_dir.is_absolute()
    assert config.server.data_dir.resolve() == (tmp_path / "var/roost").resolve()
    assert config.path == tmp_path / "etc/roost.toml"
    assert config.sqlite_path == config.server.data_dir / "roost.sqlite"


def test_endpoint_prints_ipv6_hosts_in_brackets() -> None:
    assert str(Endpoint("::1", 5222)) == "[::1]:5222"
    assert str(Endpoint("127.0.0.1", 5222)) == "127.0.0.1:5222"


def test_empty_string_disables_a_listener_and_a_service(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[listen]\nc2s = ""\n[services]\nmuc = ""\n'))
    assert config.listen.c2s is None
    assert config.services.muc == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[listen]\nc2s = "localhost:99999"',
         '[listen].c2s: "localhost:99999" is not a valid port (1-65535)'),
        ('[listen]\nc2s = "localhost:0"',
         '[listen].c2s: "localhost:0" is not a valid port (1-65535)'),
        ('[listen]\nhttp = "localhost"',
         '[listen].http: "localhost" is not "host:port" (e.g. "127.0.0.1:5222")'),
        ('[listen]\nc2s = "::1:5222"',
         '[listen].c2s: "::1:5222": write IPv6 addresses in brackets, "[::1]:5222"'),
        ('[listen]\nc2s = "[nope]:5222"',
         '[listen].c2s: "[nope]:5222": nope is not an IPv6 address'),
        ('[listen]\nc2s_tls = "127.0.0.1:5222"',
         "[listen].c2s_tls: 127.0.0.1:5222 is also used by [listen].c2s"),
        ("[listen]\nc2s = 5222", "[listen].c2s: expected a string, got an integer (5222)"),
        ('[http]\npublic_url = "chat.example.org"',
         '[http].public_url: "chat.example.org" is not an http(s) URL '
         '(e.g. "https://chat.example.org")'),
        ('[http]\ntrusted_proxies = ["10.0.0.0/33"]',
         '[http].trusted_proxies: "10.0.0.0/33" is not an IP address or network '
         '(e.g. "10.0.0.0/8")'),
        ('[http]\ncors_origins = ["https://example.org/"]',
         '[http].cors_origins: "https://example.org/" is not "*" or an origin '
         '(e.g. "https://example.org")'),
        ("[http]\nbosh_max_wait = 0", "[http].bosh_max_wait: 0 is too small (minimum 1)"),
        ("[http]\ntls = 1", "[http].tls: expected a boolean, got an integer (1)"),
        ("[limits]\nstanza_sise = 1",
         "[limits].stanza_sise: unknown key (known keys: stanza_size, stanza_size_preauth, "
         "header_size, depth, depth_preauth, elements, elements_preauth, preauth_timeout, "
         "idle_timeout, idle_close_after, connections_per_ip, connection_rate_per_ip, "
         "auth_failures_per_stream, auth_failures_per_ip, auth_ban_time, "
         "resources_per_account, offline_messages, offline_expire_after, vcard_size, "
         "exempt_loopback, attributes, namespace_declarations, read_rate, read_burst, "
         "send_queue_stanzas, send_queue_bytes, memory_limit)"),
        ("[limits]\nmemory_limit = -1", "[limits].memory_limit: -1 is too small (minimum 0)"),
        ("[limits]\nread_rate = 0", "[limits].read_rate: 0 is too small (minimum 1)"),
        ('[http]\nmetrics_allow = ["everyone"]',
         '[http].metrics_allow: "everyone" is not an IP address or network '
         '(e.g. "10.0.0.0/8")'),
        ("[limits]\ndepth = 0", "[limits].depth: 0 is too small (minimum 1)"),
        ("[limits]\nstanza_size = 9999", "[limits].stanza_size: 9999 is too small (minimum 10000)"),
        ("[limits]\ndepth = true", "[limits].depth: expected an integer, got a boolean (true)"),
        ('[limits]\ndepth = "64"', '[limits].depth: expected an integer, got a string ("64")'),
        ("[limits]\nexempt_loopback = 1",
         "[limits].exempt_loopback: expected a boolean, got an integer (1)"),
        ("[limits]\nidle_timeout = 1.5",
         "[limits].idle_timeout: expected an integer, got a float (1.5)"),
        ("[server]\ndomains = []", "[server].domains: at least one domain is required"),
        ('[server]\ndomains = "localhost"',
         '[server].domains: expected an array, got a string ("localhost")'),
        ("[server]\ndomains = [1]", "[server].domains: expected an array of strings, got 1"),
        ('[server]\ndomains = ["a b"]',
         "[server].domains: \"a b\" is not a valid domain: domainpart: label 'a b' not allowed"),
        ('[server]\ndomains = ["x.org", "X.org"]', '[server].domains: "x.org" is listed twice'),
        ('[server]\ndata_dir = ""', "[server].data_dir: must not be empty"),
        ('[server]\nlog_level = "verbose"',
         '[server].log_level: "verbose" is not one of debug, info, warning, error'),
        ('[tls]\ncert = "a.pem"', "[tls].key: must be set when [tls].cert is set"),
        ('[tls]\nrequire_c2s = "yes"',
         '[tls].require_c2s: expected a boolean, got a string ("yes")'),
        ('[storage]\nbackend = "mysql"',
         '[storage].backend: "mysql" is not one of sqlite, postgresql'),
        ('[storage]\nbackend = "postgresql"',
         '[storage].dsn: required when backend is "postgresql" (e.g. "postgresql://...")'),
        ('[registration]\nopen = "no"',
         '[registration].open: expected a boolean, got a string ("no")'),
        ('[services]\nmuc = "localhost"',
         '[services].muc: "localhost" is already used by [server].domains'),
        ('[components."conference.localhost"]\nsecret = "s"',
         '[components."conference.localhost"]: "conference.localhost" is already used by '
         '[services].muc (set [services].muc = "" to disable it)'),
        ('[components."gw.localhost"]\nsecret = "s"\nport = 1',
         '[components."gw.localhost"].port: unknown key (known keys: secret)'),
        ('[components."gw.localhost"]\n',
         '[components."gw.localhost"].secret: required (the shared secret of XEP-0114)'),
        ('[components."gw.localhost"]\nsecret = ""',
         '[components."gw.localhost"].secret: must not be empty'),
        ('[components."gw localhost"]\nsecret = "s"',
         '[components]."gw localhost": "gw localhost" is not a valid domain: '
         "domainpart: label 'gw localhost' not allowed"),
        ("components = 1", "[components]: expected a table, got an integer"),
        ('[modules]\nenabled = ["roster", "roster"]',
         '[modules].enabled: "roster" is listed twice'),
        ('[modules]\nenabled = ["mod-roster"]',
         '[modules].enabled: "mod-roster" is not a module name'),
        ("[modules]\nquota = 5",
         "[modules].quota: unknown key (known keys: enabled; the options of a module go in "
         "a [modules.NAME] table)"),
        ("[modules.mod-offline]\nquota = 5",
         '[modules.mod-offline]: "mod-offline" is not a module name'),
        ('[modules."off line"]\nquota = 5',
         '[modules."off line"]: "off line" is not a module name'),
        ("[modules.enabled]\nroster = true",
         "[modules].enabled: expected an array, got a table ({'roster': True})"),
        ("modules = []", "[modules]: expected a table, got an array"),
        ("server = 1", "[server]: expected a table, got an integer"),
        ("[sever]\nx = 1",
         "[sever]: unknown section (known sections: server, listen, http, tls, storage, limits, "
         "registration, services, components, modules)"),
        ('domains = ["localhost"]',
         "domains: unknown key outside any [section] (known sections: server, listen, http, tls, "
         "storage, limits, registration, services, components, modules)"),
    ],
)  # fmt: skip
def test_bad_configuration_names_file_key_path_and_what_is_allowed(
    tmp_path: Path, text: str, message: str
) -> None:
    assert error_of(tmp_path, text) == f"{tmp_path / 'roost.toml'}: {message}"


def test_module_tables_are_kept_as_they_are_for_the_modules_to_check(tmp_path: Path) -> None:
    text = '[modules.offline]\nquota = "anything"\n[modules.offline.nested]\nx = [1]\n'
    text += "[modules.mam]\n"
    modules = load_config(write(tmp_path, text)).modules
    assert modules == ModulesSection(
        None, {"offline": {"quota": "anything", "nested": {"x": [1]}}, "mam": {}}
    )


def test_no_module_tables_by_default(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, default_config_text())).modules.options == {}


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    text = '[server]\nlog_level = "info"\ndomains = [localhost]\n'
    assert (
        error_of(tmp_path, text) == f"{tmp_path / 'roost.toml'}:3:12: invalid TOML: Invalid value"
    )


def test_toml_error_at_the_end_of_the_file_gives_the_last_position(tmp_path: Path) -> None:
    message = error_of(tmp_path, "[server]\ndomains = [")
    assert message.startswith(f"{tmp_path / 'roost.toml'}:2:12: invalid TOML: ")


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: file not found (`roost init -c {path}` writes one)"


def test_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "roost.toml"
    path.write_bytes(b'[server]\nlog_level = "\xff"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}:2: not UTF-8 text"


def test_warnings_name_each_configured_feature_not_built_yet(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, default_config_text()))
    warnings = config_warnings(config)
    assert warnings[0] == (
        "[listen].s2s is set but server-to-server federation is not built yet in roost 0.1; "
        "it is ignored"
    )
    assert [w.split(" ")[0] for w in warnings] == [
        "[listen].s2s", "[listen].component",
        "[services].muc", "[services].pubsub", "[services].upload",
    ]  # fmt: skip


def test_no_warning_when_unbuilt_features_are_disabled(tmp_path: Path) -> None:
    text = '[listen]\ns2s = ""\ncomponent = ""\nhttp = ""\n'
    text += '[services]\nmuc = ""\npubsub = ""\nupload = ""\n'
    assert config_warnings(load_config(write(tmp_path, text))) == []


def test_warnings_for_components_and_open_registration() -> None:
    config = Config(
        path=Path("roost.toml"),
        listen=ListenSection(s2s=None, component=None, http=None),
        registration=RegistrationSection(open=True),
        components={"gw.localhost": ComponentSection("s")},
    )
    assert [w.split(" ")[0] for w in config_warnings(config)] == [
        "[components]",
        "[registration].open",
    ]
    assert config_warnings(replace(config, components={}, registration=RegistrationSection())) == []


def test_config_built_in_code_has_services_disabled() -> None:
    config = Config(path=Path("roost.toml"), listen=ListenSection(None, None, None, None, None))
    assert config_warnings(config) == []
