"""SCRAM for c2s streams, server side, sans-IO (RFC 5802 §5, §7; RFC 7677; SCRAM-SHA-512).

Implements SCRAM-SHA-1 (RFC 5802), SCRAM-SHA-256 (RFC 7677) and SCRAM-SHA-512, the -PLUS
variants with RFC 5929 ``tls-server-end-point`` channel binding (RFC 5056, RFC 5802 §6), and
XEP-0474 (SASL SCRAM Downgrade Protection, "SSDP", version 0.5.0, 2025-10-25) on every
exchange. ``roost.stream.sasl.SaslServer`` runs one ``ScramMechanism`` per exchange::

    first(client-first) ──► NeedCredentials(username)
    credentials(keys or None) ──► Challenge(server-first)
    final(client-final) ──► Success(v=ServerSignature) | Failure

An unknown user (or one without keys for the hash) goes on with fake keys and fails at the
end with ``not-authorized``, exactly like a wrong proof. Secrets are compared with
``hmac.compare_digest``.

Downgrade protection (XEP-0474 §5.1): every server-first-message ends with the optional
attribute ``h=`` (RFC 5802 §5.1 extensions, after ``i=``), the base64 of the SCRAM mechanism's
own hash (SHA-1, SHA-256 or SHA-512) of the ASCII string::

    S = sorted(offered) joined by %x1E  [ %x1F  sorted(channel-binding types) joined by %x1E ]

sorted by octets ("i;octet", RFC 4790 §9.3). ``offered`` is the advertised ``<mechanisms/>``
list (PLAIN included when offered); the channel-binding part is present exactly when
XEP-0440 ``<sasl-channel-binding/>`` was advertised, which the c2s stream does, with
``cb_type`` only, whenever it has ``cb_data`` (None: nothing advertised). The attribute is
in the AuthMessage, so the client's proof covers it; the client compares it with the lists it
saw and fails on a mismatch. Unknown users get the same attribute (same shape of reply).

SCRAM is implemented here on ``roost.auth.credentials``, not with scramp's ``ScramServer``:
scramp refuses any gs2 authzid and applies SASLprep (Unicode 3.2) to the username, which
rejects valid PRECIS usernames (e.g. Malayalam chillu letters); and the gs2 policy below must
be ours anyway. The tests use scramp's ``ScramClient`` as an independent peer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from roost.auth.credentials import Credentials, ScramKeys, hashlib_name
from roost.stream.mechanism import Challenge, Failure, NeedCredentials, Success, fake_keys

SCRAM_HASHES: Final = {
    "SCRAM-SHA-512": "SHA-512",
    "SCRAM-SHA-256": "SHA-256",
    "SCRAM-SHA-1": "SHA-1",
}
PLUS: Final = "-PLUS"
_SSDP_ITEM_SEPARATOR: Final = "\x1e"  # XEP-0474 §5.1
_SSDP_LIST_SEPARATOR: Final = "\x1f"
_CB_NAME_CHARS: Final = frozenset(string.ascii_letters + string.digits + ".-")
# Attribute names RFC 5802 §5.1 defines; an "extension" reusing one of them is junk.
_SCRAM_ATTRIBUTES: Final = frozenset("amnrcsipve")


def downgrade_protection_hash(
    hash_name: str, mechanisms: Sequence[str], channel_bindings: Sequence[str] | None
) -> str:
    """XEP-0474 §5.1 "h" value: base64 of H(sorted mechanisms [%x1F sorted cb types]).

    ``hash_name`` is the SCRAM hash ("SHA-256", ...); ``channel_bindings`` is None when no
    XEP-0440 list was advertised (then no %x1F either).
    """
    text = _SSDP_ITEM_SEPARATOR.join(sorted(mechanisms, key=str.encode))
    if channel_bindings is not None:
        types = _SSDP_ITEM_SEPARATOR.join(sorted(channel_bindings, key=str.encode))
        text += _SSDP_LIST_SEPARATOR + types
    digest = hashlib.new(hashlib_name(hash_name), text.encode()).digest()
    return base64.b64encode(digest).decode()


def scram_mechanism(
    mechanism: str,
    offered: Sequence[str],
    cb_type: str,
    cb_data: bytes | None,
    secret: bytes,
) -> ScramMechanism | None:
    """The exchange for ``mechanism`` ("SCRAM-SHA-256-PLUS", ...); None when it cannot run
    (an unknown hash, or -PLUS without channel-binding data)."""
    plus = mechanism.endswith(PLUS)
    hash_name = SCRAM_HASHES.get(mechanism.removesuffix(PLUS))
    if hash_name is None or (plus and not cb_data):
        return None
    binding = (cb_type, cb_data or b"") if plus else None
    plus_offered = any(m.endswith(PLUS) for m in offered)
    advertised_cb = [cb_type] if cb_data is not None else None  # as c2s's features
    ssdp = downgrade_protection_hash(hash_name, offered, advertised_cb)
    return ScramMechanism(hash_name, binding, plus_offered, ssdp, secret)


@dataclass(frozen=True, slots=True)
class _ClientFirst:
    gs2_header: str  # as sent, part of the channel-binding input
    cb_name: str | None  # "p=<cb_name>", None for "n" and "y"
    downgraded: bool  # "y": the client can bind but thinks we cannot
    authzid: str | None
    bare: str  # client-first-message-bare, part of AuthMessage
    username: str
    nonce: str


@dataclass(frozen=True, slots=True)
class _ClientFinal:
    cbind_input: bytes
    nonce: str
    proof: bytes
    without_proof: str  # client-final-message-without-proof, part of AuthMessage


class ScramMechanism:
    """One SCRAM exchange (``SaslServer`` makes one per ``<auth/>``)."""

    __slots__ = (
        "_binding",
        "_first",
        "_hash",
        "_keys",
        "_known",
        "_nonce",
        "_plus_offered",
        "_secret",
        "_server_first",
        "_ssdp",
    )

    def __init__(
        self,
        hash_name: str,
        binding: tuple[str, bytes] | None,
        plus_offered: bool,
        ssdp: str,
        secret: bytes,
    ) -> None:
        self._hash = hash_name
        self._ssdp = ssdp  # XEP-0474 "h" value
        self._binding = binding  # (cb type, cb data) for -PLUS, else None
        self._plus_offered = plus_offered
        self._secret = secret
        self._first: _ClientFirst | None = None
        self._keys: ScramKeys | None = None
        self._known = False
        self._nonce = ""
        self._server_first = ""

    def first(self, data: bytes) -> NeedCredentials | Failure:
        parsed = _parse_client_first(_utf8(data))
        if isinstance(parsed, Failure):
            return parsed
        refused = self._check_binding_flag(parsed)
        if refused is not None:
            return refused
        self._first = parsed
        return NeedCredentials(parsed.username)

    def _check_binding_flag(self, first: _ClientFirst) -> Failure | None:
        """The gs2 channel-binding flag against the mechanism (RFC 5802 §6)."""
        if self._binding is not None:
            if first.cb_name is None:
                return Failure("malformed-request", "a -PLUS mechanism needs the 'p' flag")
            if first.cb_name != self._binding[0]:
                return Failure("not-authorized", f"channel binding only by {self._binding[0]}")
        elif first.cb_name is not None:
            return Failure("malformed-request", "channel binding needs a -PLUS mechanism")
        elif first.downgraded and self._plus_offered:
            return Failure("not-authorized", "channel binding was offered (downgrade?)")
        return None

    def credentials(self, creds: Credentials | None) -> Challenge | Failure:
        if self._first is None:
            return Failure("malformed-request", "unexpected SASL step")
        keys = creds.get(self._hash) if creds else None
        self._known = keys is not None
        self._keys = keys or fake_keys(self._hash, self._first.username, self._secret)
        self._nonce = self._first.nonce + secrets.token_urlsafe(18)
        salt = base64.b64encode(self._keys.salt).decode()
        iterations = self._keys.iterations
        self._server_first = f"r={self._nonce},s={salt},i={iterations},h={self._ssdp}"
        return Challenge(self._server_first.encode())

    def final(self, data: bytes) -> Success | Failure:
        first, keys = self._first, self._keys
        parsed = _parse_client_final(_utf8(data))
        if first is None or keys is None or parsed is None:
            return Failure("malformed-request", "malformed SCRAM client-final-message")
        if not hmac.compare_digest(parsed.nonce.encode(), self._nonce.encode()):
            return Failure("malformed-request", "wrong SCRAM nonce")
        cb_data = self._binding[1] if self._binding is not None else b""
        bound = hmac.compare_digest(parsed.cbind_input, first.gs2_header.encode() + cb_data)
        auth_message = f"{first.bare},{self._server_first},{parsed.without_proof}".encode()
        signature = _verify_proof(self._hash, keys, auth_message, parsed.proof)
        if not bound:
            return Failure("not-authorized", "channel binding mismatch")
        if signature is None or not self._known:
            return Failure("not-authorized")
        verifier = b"v=" + base64.b64encode(signature)
        return Success(verifier, first.username, first.authzid)


def _parse_client_first(text: str | None) -> _ClientFirst | Failure:
    """client-first-message = gs2-header client-first-message-bare (RFC 5802 §7)."""
    malformed = Failure("malformed-request", "malformed SCRAM client-first-message")
    if text is None or "\x00" in text:
        return malformed
    fields = text.split(",")
    if len(fields) < 4:
        return malformed
    flag, authz, *bare = fields
    cb_name = flag[2:] if flag.startswith("p=") else None
    if flag not in ("n", "y") and not (cb_name and set(cb_name) <= _CB_NAME_CHARS):
        return malformed
    authzid = None
    if authz:
        authzid = _unescape_saslname(authz[2:]) if authz.startswith("a=") else None
        if authzid is None:
            return Failure("invalid-authzid", "malformed SCRAM authzid")
    if bare[0].startswith("m="):
        return Failure("malformed-request", "no SCRAM mandatory extension is supported")
    username = _unescape_saslname(bare[0][2:]) if bare[0].startswith("n=") else None
    nonce = bare[1][2:] if bare[1].startswith("r=") else ""
    if username is None or not _is_printable(nonce) or not _are_extensions(bare[2:]):
        return malformed
    return _ClientFirst(
        f"{flag},{authz},", cb_name, flag == "y", authzid, ",".join(bare), username, nonce
    )


def _parse_client_final(text: str | None) -> _ClientFinal | None:
    """client-final-message = c=... "," r=... ["," extensions] "," p=... (RFC 5802 §7)."""
    if text is None or "\x00" in text:
        return None
    fields = text.split(",")
    if len(fields) < 3:
        return None
    cbind, nonce, *extensions, proof = fields
    if not (cbind.startswith("c=") and nonce.startswith("r=") and proof.startswith("p=")):
        return None
    cbind_input, proof_bytes = _b64decode(cbind[2:]), _b64decode(proof[2:])
    if cbind_input is None or proof_bytes is None or not _are_extensions(extensions):
        return None
    return _ClientFinal(cbind_input, nonce[2:], proof_bytes, ",".join(fields[:-1]))


def _verify_proof(
    hash_name: str, keys: ScramKeys, auth_message: bytes, proof: bytes
) -> bytes | None:
    """Check ClientProof (RFC 5802 §3); return ServerSignature, or None if the proof is wrong."""
    name = hashlib_name(hash_name)
    client_signature = hmac.new(keys.stored_key, auth_message, name).digest()
    size = len(client_signature)
    if len(proof) != size:
        return None
    client_key_int = int.from_bytes(proof) ^ int.from_bytes(client_signature)
    client_key = client_key_int.to_bytes(size)
    if not hmac.compare_digest(hashlib.new(name, client_key).digest(), keys.stored_key):
        return None
    return hmac.new(keys.server_key, auth_message, name).digest()


def _unescape_saslname(value: str) -> str | None:
    """saslname: '=2C' -> ',', '=3D' -> '='; any other '=' (or nothing) is malformed."""
    head, *rest = value.split("=")
    pieces = [head]
    for piece in rest:
        if piece[:2] not in ("2C", "3D"):
            return None
        pieces.append(("," if piece[:2] == "2C" else "=") + piece[2:])
    name = "".join(pieces)
    return name or None


def _is_printable(value: str) -> bool:
    """RFC 5802 'printable' (errata 1*): %x21-2B / %x2D-7E."""
    return bool(value) and all("\x21" <= c <= "\x7e" and c != "," for c in value)


def _are_extensions(attributes: Sequence[str]) -> bool:
    """attr-val = ALPHA "=" value, naming no attribute RFC 5802 defines."""
    return all(
        len(a) > 2
        and a[1] == "="
        and a[0] in string.ascii_letters
        and a[0] not in _SCRAM_ATTRIBUTES
        for a in attributes
    )


def _b64decode(value: str) -> bytes | None:
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII input
        return None


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None
