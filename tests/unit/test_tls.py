"""Certificates: the generated self-signed one, server contexts, channel binding, checks."""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from roost.config import Config, ConfigError, ServerSection, TLSSection
from roost.tls import (
    ID_ON_XMPPADDR,
    end_point_hash,
    ensure_certificate,
    inspect_certificate,
    read_certificate,
    server_context,
)


def config_for(tmp_path: Path, *domains: str) -> Config:
    return Config(path=tmp_path / "roost.toml", server=ServerSection(domains, tmp_path / "data"))


def write_certificate(
    directory: Path,
    names: list[str],
    *,
    not_after: datetime | None = None,
    algorithm: hashes.SHA256 | hashes.SHA384 | None = None,
) -> tuple[Path, Path]:
    """A self-signed certificate written the way an operator would provide one."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=400))
        .not_valid_after(not_after or now + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, algorithm or hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "roost.crt", directory / "roost.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def leaf(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_generated_certificate_covers_every_domain_and_its_subdomains(tmp_path: Path) -> None:
    cert, key = ensure_certificate(config_for(tmp_path, "localhost", "example.org"))
    assert (cert, key) == (tmp_path / "data/roost.crt", tmp_path / "data/roost.key")
    report = read_certificate(cert, key)
    assert report.names == ("localhost", "*.localhost", "example.org", "*.example.org")
    assert report.key_matches
    assert report.self_signed
    assert report.covers("conference.example.org")
    assert not report.covers("a.b.example.org")
    assert timedelta(days=364) < report.not_after - datetime.now(UTC) <= timedelta(days=365)
    assert key.stat().st_mode & 0o777 == 0o600


def test_generated_certificate_carries_xmpp_addresses(tmp_path: Path) -> None:
    cert, _ = ensure_certificate(config_for(tmp_path, "localhost"))
    san = leaf(cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    others = san.get_values_for_type(x509.OtherName)
    assert [(o.type_id, o.value) for o in others] == [(ID_ON_XMPPADDR, b"\x0c\x09localhost")]


def test_generated_certificate_is_reused(tmp_path: Path) -> None:
    config = config_for(tmp_path, "localhost")
    cert, key = ensure_certificate(config)
    first = cert.read_bytes(), key.read_bytes()
    assert ensure_certificate(config) == (cert, key)
    assert (cert.read_bytes(), key.read_bytes()) == first


def test_generated_certificate_is_regenerated_when_domains_change(tmp_path: Path) -> None:
    cert, key = ensure_certificate(config_for(tmp_path, "localhost"))
    ensure_certificate(config_for(tmp_path, "localhost", "example.org"))
    report = read_certificate(cert, key)
    assert report.covers("example.org")
    assert report.key_matches


def test_generated_certificate_is_regenerated_when_it_expires_soon(tmp_path: Path) -> None:
    soon = datetime.now(UTC) + timedelta(days=3)
    cert, key = write_certificate(tmp_path / "data", ["localhost", "*.localhost"], not_after=soon)
    ensure_certificate(config_for(tmp_path, "localhost"))
    assert read_certificate(cert, key).not_after > soon + timedelta(days=300)


def test_configured_certificate_is_used_as_is(tmp_path: Path) -> None:
    cert, key = write_certificate(tmp_path / "certs", ["example.org"])
    config = replace(config_for(tmp_path, "example.org"), tls=TLSSection(cert, key))
    assert ensure_certificate(config) == (cert, key)
    assert not (tmp_path / "data").exists()


def test_missing_configured_certificate_is_a_config_error(tmp_path: Path) -> None:
    config = config_for(tmp_path, "localhost")
    config = replace(config, tls=TLSSection(tmp_path / "no.crt", tmp_path / "no.key"))
    with pytest.raises(ConfigError) as info:
        ensure_certificate(config)
    assert str(info.value) == (
        f"{tmp_path / 'roost.toml'}: [tls]: the certificate {tmp_path / 'no.crt'} "
        "cannot be read: No such file or directory"
    )


def test_configured_key_of_another_certificate_is_a_config_error(tmp_path: Path) -> None:
    cert, _ = write_certificate(tmp_path / "a", ["localhost"])
    _, other_key = write_certificate(tmp_path / "b", ["localhost"])
    config = replace(config_for(tmp_path, "localhost"), tls=TLSSection(cert, other_key))
    with pytest.raises(ConfigError, match="does not belong to the certificate"):
        ensure_certificate(config)


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> tuple[ssl.SSLObject, ...]:
    """Run a TLS handshake between two in-memory endpoints."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client_side = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, end in (("client", client_side), ("server", server_side)):
            try:
                end.do_handshake()
                done[name] = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return client_side, server_side
    raise AssertionError("the handshake did not finish")


def test_server_context_completes_a_handshake_with_alpn(tmp_path: Path) -> None:
    cert, key = ensure_certificate(config_for(tmp_path, "localhost"))
    server = server_context(cert, key, alpn=["xmpp-client"])
    client = ssl.create_default_context(cafile=str(cert))
    client.set_alpn_protocols(["xmpp-client"])
    client_side, server_side = handshake(server, client)
    assert client_side.selected_alpn_protocol() == "xmpp-client"
    assert server_side.version() in ("TLSv1.2", "TLSv1.3")
    assert client_side.getpeercert() is not None


def test_server_context_refuses_old_tls_compression_and_renegotiation(tmp_path: Path) -> None:
    cert, key = ensure_certificate(config_for(tmp_path, "localhost"))
    context = server_context(cert, key)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_COMPRESSION
    assert context.options & ssl.OP_NO_RENEGOTIATION


def test_server_context_with_an_unusable_key_is_a_config_error(tmp_path: Path) -> None:
    cert, _ = write_certificate(tmp_path / "a", ["localhost"])
    (tmp_path / "bad.key").write_text("not a key")
    with pytest.raises(ConfigError, match="cannot load the certificate"):
        server_context(cert, tmp_path / "bad.key")


def test_end_point_hash_is_sha256_of_der_for_ecdsa_sha256(tmp_path: Path) -> None:
    cert, _ = ensure_certificate(config_for(tmp_path, "localhost"))
    der = leaf(cert).public_bytes(serialization.Encoding.DER)
    assert end_point_hash(cert) == hashlib.sha256(der).digest()


def test_end_point_hash_follows_the_signature_hash(tmp_path: Path) -> None:
    cert, _ = write_certificate(tmp_path, ["localhost"], algorithm=hashes.SHA384())
    der = leaf(cert).public_bytes(serialization.Encoding.DER)
    assert end_point_hash(cert) == hashlib.sha384(der).digest()


# `openssl req -x509 -sha1 ...`: cryptography no longer signs with SHA-1.
ECDSA_SHA1_CERTIFICATE = """\
-----BEGIN CERTIFICATE-----
MIIBfjCCASSgAwIBAgIUT/qr6NhtUb4H2YEbQSEp/0A+oUEwCQYHKoZIzj0EATAU
MRIwEAYDVQQDDAlsb2NhbGhvc3QwIBcNMjYxMTIxMDgyMjUzWhgPMjEyNjEwMjgw
ODIyNTNaMBQxEjAQBgNVBAMMCWxvY2FsaG9zdDBZMBMGByqGSM49AgEGCCqGSM49
AwEHA0IABFOXvpW0K84dl5+Ei9226S2MLLAnbgbL+t6vCG7c38iedtV0U9pwWSvs
5xP9s+w5TKO/jBmw4wfI0of3n23ytU6jUzBRMB0GA1UdDgQWBBRsF052kxhcP22g
fLhnjjWx7TMgPzAfBgNVHSMEGDAWgBRsF052kxhcP22gfLhnjjWx7TMgPzAPBgNV
HRMBAf8EBTADAQH/MAkGByqGSM49BAEDSQAwRgIhAJuWduWO1VYVpQzersbPzc8w
V+pnlc0rG4k5PA/57VAiAiEAnQbIZMOR0zRLqPHtiV2n0OiSorKo5iYtK1qjP/fV
YzE=
-----END CERTIFICATE-----
"""


def test_end_point_hash_uses_sha256_for_sha1_signatures(tmp_path: Path) -> None:
    cert = tmp_path / "sha1.crt"
    cert.write_text(ECDSA_SHA1_CERTIFICATE)
    assert isinstance(leaf(cert).signature_hash_algorithm, hashes.SHA1)
    der = leaf(cert).public_bytes(serialization.Encoding.DER)
    assert end_point_hash(cert) == hashlib.sha256(der).digest()


def test_inspect_finds_nothing_wrong_with_a_good_certificate(tmp_path: Path) -> None:
    cert, key = write_certificate(tmp_path, ["example.org", "*.example.org"])
    assert inspect_certificate(cert, key, ["example.org", "muc.example.org"]) == []


def test_inspect_reports_domains_not_covered(tmp_path: Path) -> None:
    cert, key = write_certificate(tmp_path, ["example.org"])
    assert inspect_certificate(cert, key, ["example.org", "example.net"]) == [
        f"the certificate {cert} does not cover example.net (it covers example.org)"
    ]


def test_inspect_reports_expired_and_soon_expiring_certificates(tmp_path: Path) -> None:
    expiry = datetime(2030, 6, 1, tzinfo=UTC)
    cert, key = write_certificate(tmp_path, ["example.org"], not_after=expiry)
    late = expiry + timedelta(days=1)
    assert inspect_certificate(cert, key, ["example.org"], now=late) == [
        f"the certificate {cert} expired on 2030-06-01"
    ]
    early = expiry - timedelta(days=10, hours=1)
    assert inspect_certificate(cert, key, ["example.org"], now=early) == [
        f"the certificate {cert} expires on 2030-06-01, in 10 days"
    ]


def test_inspect_reports_a_key_that_does_not_match(tmp_path: Path) -> None:
    cert, _ = write_certificate(tmp_path / "a", ["example.org"])
    _, key = write_certificate(tmp_path / "b", ["example.org"])
    assert inspect_certificate(cert, key, ["example.org"]) == [
        f"the key {key} does not belong to the certificate {cert}"
    ]


def test_inspect_reports_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "junk.crt").write_text("junk")
    assert inspect_certificate(tmp_path / "junk.crt", tmp_path / "k", ["x.org"]) == [
        f"the certificate {tmp_path / 'junk.crt'} is not a PEM certificate"
    ]
    cert, _ = write_certificate(tmp_path, ["x.org"])
    assert inspect_certificate(cert, tmp_path / "missing.key", ["x.org"]) == [
        f"the key {tmp_path / 'missing.key'} cannot be read: No such file or directory"
    ]
