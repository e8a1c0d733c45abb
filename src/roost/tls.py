"""Certificates and TLS contexts: the self-signed certificate, server contexts, channel binding.

- ``ensure_certificate`` returns the configured certificate and key, or generates once a
  self-signed certificate in the data directory with a dNSName for every served domain
  and its ``*.`` wildcard (RFC 6125 §6.4.3, for services such as ``conference.domain``)
  and an XmppAddr for every domain (RFC 6120 §13.7.1.4). It is generated again when it
  no longer covers the configured domains or expires within 30 days.
- ``server_context``: TLS 1.2 or newer, no compression, no renegotiation (RFC 6120
  §13.9.4, RFC 7525); ALPN "xmpp-client" for direct TLS (XEP-0368).
- ``end_point_hash``: the ``tls-server-end-point`` channel binding of RFC 5929 §4.1 for
  SCRAM-*-PLUS, since the ssl module offers no keying-material exporter.
- ``inspect_certificate``: what ``roost check`` says about a certificate, in plain words.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import idna
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from roost.config import Config, ConfigError

log = logging.getLogger(__name__)

GENERATED_CERT: Final = "roost.crt"
GENERATED_KEY: Final = "roost.key"
VALIDITY: Final = timedelta(days=365)
RENEW_BEFORE: Final = timedelta(days=30)  # also when `roost check` starts to warn
ID_ON_XMPPADDR: Final = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.5")  # RFC 6120 §13.7.1.4
_DER: Final = serialization.Encoding.DER


@dataclass(frozen=True, slots=True)
class CertificateReport:
    """What a certificate (the leaf of a PEM chain) and its key say about themselves."""

    names: tuple[str, ...]  # dNSName and iPAddress SANs (the CN when there are none)
    not_before: datetime
    not_after: datetime
    self_signed: bool
    key_matches: bool

    def covers(self, domain: str) -> bool:
        """True if ``domain`` matches a name exactly or through a one-label wildcard."""
        name = _a_label(domain).lower()
        parent = name.partition(".")[2]
        return any(n.lower() in (name, f"*.{parent}") for n in self.names)


def _a_label(domain: str) -> str:
    """The ASCII form of a domain as certificates carry it (IDNA A-labels)."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ConfigError(f"{domain!r} cannot be written in a certificate: {exc}") from None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"the {what} {path} cannot be read: {exc.strerror}") from None


def _load_leaf(cert: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificates(_read(cert, "certificate"))[0]
    except ValueError:
        raise ConfigError(f"the certificate {cert} is not a PEM certificate") from None


def read_certificate(cert: Path, key: Path) -> CertificateReport:
    """Read a PEM certificate and its PEM key; raise ConfigError if either is unusable."""
    leaf = _load_leaf(cert)
    try:
        private = serialization.load_pem_private_key(_read(key, "key"), password=None)
    except TypeError:
        raise ConfigError(
            f"the key {key} is protected by a passphrase; roost needs it without"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"the key {key} is not a PEM private key") from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    matches = leaf.public_key().public_bytes(_DER, spki) == private.public_key().public_bytes(
        _DER, spki
    )
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*san.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return CertificateReport(
        names=tuple(names),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        self_signed=leaf.issuer == leaf.subject,
        key_matches=matches,
    )


def inspect_certificate(
    cert: Path, key: Path, domains: Sequence[str], *, now: datetime | None = None
) -> list[str]:
    """Problems with a certificate, in plain words (empty when there are none)."""
    try:
        report = read_certificate(cert, key)
    except ConfigError as exc:
        return [str(exc)]
    now = now or datetime.now(UTC)
    problems = []
    if not report.key_matches:
        problems.append(f"the key {key} does not belong to the certificate {cert}")
    if report.not_after <= now:
        problems.append(f"the certificate {cert} expired on {report.not_after:%Y-%m-%d}")
    elif report.not_after - now < RENEW_BEFORE:
        days = (report.not_after - now).days
        problems.append(
            f"the certificate {cert} expires on {report.not_after:%Y-%m-%d}, in {days} days"
        )
    if report.not_before > now:
        problems.append(f"the certificate {cert} is not valid before {report.not_before}")
    covered = ", ".join(report.names) or "no domain"
    problems += [
        f"the certificate {cert} does not cover {domain} (it covers {covered})"
        for domain in domains
        if not report.covers(domain)
    ]
    return problems


def generated_paths(config: Config) -> tuple[Path, Path]:
    """Where the self-signed certificate and its key live."""
    return config.server.data_dir / GENERATED_CERT, config.server.data_dir / GENERATED_KEY


def _generated_is_usable(cert: Path, key: Path, domains: Sequence[str]) -> bool:
    if not (cert.exists() and key.exists()):
        return False
    try:
        report = read_certificate(cert, key)
    except ConfigError:
        return False
    now = datetime.now(UTC)
    wanted = [d.strip("[]") if _is_ip(d) else n for d in domains for n in (d, f"*.{d}")]
    return (
        report.key_matches
        and report.not_before <= now
        and report.not_after - now >= RENEW_BEFORE
        and {_a_label(n).lower() for n in wanted} <= {n.lower() for n in report.names}
    )


def ensure_certificate(config: Config) -> tuple[Path, Path]:
    """The certificate and key to serve: configured ones, or a generated self-signed pair."""
    if config.tls.cert is not None and config.tls.key is not None:
        try:
            report = read_certificate(config.tls.cert, config.tls.key)
        except ConfigError as exc:
            raise ConfigError(f"{config.path}: [tls]: {exc}") from None
        if not report.key_matches:
            raise ConfigError(
                f"{config.path}: [tls]: the key {config.tls.key} does not belong to "
                f"the certificate {config.tls.cert}"
            )
        return config.tls.cert, config.tls.key
    cert, key = generated_paths(config)
    if not _generated_is_usable(cert, key, config.server.domains):
        generate_certificate(config.server.domains, cert, key)
        log.info("generated a self-signed certificate in %s", cert)
    return cert, key


def _is_ip(domain: str) -> bool:
    try:
        ipaddress.ip_address(domain.strip("[]"))
    except ValueError:
        return False
    return True


def _der_utf8(text: str) -> bytes:
    """DER encoding of an ASN.1 UTF8String (the value of an XmppAddr otherName)."""
    data = text.encode()
    if len(data) < 0x80:
        return bytes([0x0C, len(data)]) + data
    size = len(data).to_bytes((len(data).bit_length() + 7) // 8, "big")
    return bytes([0x0C, 0x80 | len(size)]) + size + data


def _alt_names(domains: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for domain in domains:
        if _is_ip(domain):
            names.append(x509.IPAddress(ipaddress.ip_address(domain.strip("[]"))))
            continue
        ascii_name = _a_label(domain)
        names += [x509.DNSName(ascii_name), x509.DNSName(f"*.{ascii_name}")]
    names += [x509.OtherName(ID_ON_XMPPADDR, _der_utf8(d)) for d in domains]
    return names


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically, created with ``mode``."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, mode)  # in case a leftover temporary file had another mode
        file.write(data)
        file.flush()
        os.fsync(fd)
    os.replace(temporary, path)


def _self_signed(private: ec.EllipticCurvePrivateKey, domains: Sequence[str]) -> x509.Certificate:
    common_name = domains[0] if len(domains[0]) <= 64 else "roost"  # X.520 ub-common-name
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "roost self-signed"),
        ]
    )
    key_usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    # clientAuth too: s2s dials out with the same certificate.
    usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))  # some slack for clocks behind ours
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(_alt_names(domains)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(private.public_key()), critical=False
        )
        .sign(private, hashes.SHA256())
    )


def generate_certificate(domains: Sequence[str], cert: Path, key: Path) -> None:
    """Write a new self-signed EC P-256 certificate for ``domains`` and its key (mode 0600)."""
    private = ec.generate_private_key(ec.SECP256R1())
    certificate = _self_signed(private, domains)
    key_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        cert.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_private(key, key_pem, 0o600)
        _write_private(cert, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot write the certificate {cert}: {exc.strerror}") from None


def server_context(cert: Path, key: Path, *, alpn: list[str] | None = None) -> ssl.SSLContext:
    """A server-side TLS context: TLS ≥ 1.2, no compression, no renegotiation."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the certificate {cert} with the key {key}: {exc}") from None
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def end_point_hash(cert: Path) -> bytes:
    """RFC 5929 §4.1 ``tls-server-end-point`` data for our leaf certificate.

    The DER certificate hashed with the hash of its signature algorithm, SHA-256 when that
    is MD5 or SHA-1 (or when the algorithm has no separate hash, as Ed25519).
    """
    leaf = _load_leaf(cert)
    algorithm = leaf.signature_hash_algorithm
    if algorithm is None or isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(leaf.public_bytes(_DER))
    return digest.finalize()
