"""SCRAM credentials as stored for every account (RFC 5802 §3, RFC 7677).

At account creation (and password change) the server derives, for each hash it offers
(SHA-1, SHA-256, SHA-512), a random salt, an iteration count, StoredKey and ServerKey. The
password itself is never stored. PLAIN (RFC 4616) is verified against the same keys: derive
SaltedPassword from the offered password and compare StoredKey in constant time.

The password is prepared with the PRECIS OpaqueString profile (RFC 8265 §4.2), which
RFC 7677 and RFC 8265 name as the successor of SASLprep for SCRAM.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Final

from precis_i18n import get_profile

HASHES: Final = ("SHA-1", "SHA-256", "SHA-512")
_HASHLIB: Final = {"SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512"}
DEFAULT_ITERATIONS: Final = 4096
MIN_ITERATIONS: Final = 4096
_OPAQUE = get_profile("OpaqueString")


class PasswordError(ValueError):
    """The password is not acceptable (empty, or invalid under PRECIS OpaqueString)."""


@dataclass(frozen=True, slots=True)
class ScramKeys:
    """The stored SCRAM secret for one hash function."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


# hash name ("SHA-1", "SHA-256", "SHA-512") -> keys
Credentials = dict[str, ScramKeys]


def prepare_password(password: str) -> bytes:
    """Apply PRECIS OpaqueString and encode as UTF-8; raise PasswordError if invalid."""
    if not password:
        raise PasswordError("the password is empty")
    try:
        prepared: str = _OPAQUE.enforce(password)
    except UnicodeError as exc:
        raise PasswordError(f"the password is not allowed: {exc}") from exc
    return prepared.encode()


def hashlib_name(hash_name: str) -> str:
    """Map "SHA-256" to the hashlib name "sha256"."""
    return _HASHLIB[hash_name]


def salted_password(hash_name: str, password: bytes, salt: bytes, iterations: int) -> bytes:
    """Hi(password, salt, i) of RFC 5802 §2.2 (PBKDF2 with HMAC)."""
    return hashlib.pbkdf2_hmac(_HASHLIB[hash_name], password, salt, iterations)


def keys_from_salted(hash_name: str, salted: bytes, salt: bytes, iterations: int) -> ScramKeys:
    """Derive StoredKey and ServerKey from SaltedPassword (RFC 5802 §3)."""
    name = _HASHLIB[hash_name]
    client_key = hmac.new(salted, b"Client Key", name).digest()
    server_key = hmac.new(salted, b"Server Key", name).digest()
    stored_key = hashlib.new(name, client_key).digest()
    return ScramKeys(salt, iterations, stored_key, server_key)


def derive(password: str, iterations: int = DEFAULT_ITERATIONS) -> Credentials:
    """Derive fresh credentials (a new random salt per hash) for every supported hash."""
    if iterations < MIN_ITERATIONS:
        raise ValueError(f"iterations must be at least {MIN_ITERATIONS}")
    prepared = prepare_password(password)
    creds: Credentials = {}
    for hash_name in HASHES:
        salt = os.urandom(16)
        salted = salted_password(hash_name, prepared, salt, iterations)
        creds[hash_name] = keys_from_salted(hash_name, salted, salt, iterations)
    return creds


def verify_password(creds: Credentials, password: str) -> bool:
    """Check a plaintext password (SASL PLAIN) against stored keys, in constant time."""
    try:
        prepared = prepare_password(password)
    except PasswordError:
        return False
    hash_name = next((h for h in ("SHA-256", "SHA-512", "SHA-1") if h in creds), None)
    if hash_name is None:
        return False
    keys = creds[hash_name]
    salted = salted_password(hash_name, prepared, keys.salt, keys.iterations)
    candidate = keys_from_salted(hash_name, salted, keys.salt, keys.iterations)
    return hmac.compare_digest(candidate.stored_key, keys.stored_key)
