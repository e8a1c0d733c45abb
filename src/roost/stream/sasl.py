"""Server side of SASL for c2s streams: PLAIN and SCRAM(-PLUS), sans-IO.

Implements RFC 6120 §6.3-§6.5 (the exchange and its failure conditions), RFC 4616 (PLAIN),
RFC 5802 (SCRAM-SHA-1), RFC 7677 (SCRAM-SHA-256), SCRAM-SHA-512, and the -PLUS variants with
RFC 5929 ``tls-server-end-point`` channel binding (RFC 5056, RFC 5802 §6), and XEP-0474
(SASL SCRAM Downgrade Protection, "SSDP", version 0.5.0, 2025-10-25) on every SCRAM exchange.

Theory of operation
-------------------
The c2s machine makes one ``SaslServer`` per ``<auth/>`` and feeds it the base64-decoded
payloads; every call returns one ``SaslStep`` and nothing here raises on client input::

    START ──start(None)──► FIRST ──respond(msg)──┐           Challenge(b"")
    START ──start(msg)───────────────────────────┴─► CREDENTIALS   NeedCredentials(username)
    CREDENTIALS ──credentials(c)──► VERIFY ──password_checked(ok)──► DONE
                                                    PLAIN: VerifyPassword, then Success | Failure
    CREDENTIALS ──credentials(c)──► FINAL ──respond()──► DONE  SCRAM: Challenge(server-first),
                                                                 then Success(v=...) | Failure

A Failure or Success ends the exchange (``done``); a call out of this order, or after the
end, is ``Failure("malformed-request")``. ``abort()`` (the client's ``<abort/>``) ends it with
``aborted``.

Credentials come from storage, which is asynchronous, so the mechanism names whom it needs
(``NeedCredentials``: the authcid as sent, SCRAM-unescaped) and the driver normalises that
name, looks it up and calls ``credentials(creds or None)``. An unknown user (or one without
keys for the selected hash) goes on with fake keys derived from the PRECIS-normalised username
and a secret, so the salt is stable per name, and fails at the end with ``not-authorized``,
exactly like a wrong password. Secrets are compared with ``hmac.compare_digest``.

PLAIN's check derives the salted password (PBKDF2, thousands of iterations: milliseconds of
CPU), so it is not done here either: ``VerifyPassword`` hands the stored (or fake) keys and
the password to the driver, which runs ``roost.auth.credentials.verify_password`` off the
event loop and calls ``password_checked(valid)`` (DESIGN.md §6: "its PBKDF2 off the event
loop"). SCRAM needs no such step: the client did the PBKDF2.

``Success.authzid`` is the authorization identity the client asked for (None if absent).
This layer does not know the domain: the driver MUST accept it only when it equals the
authenticated ``username@domain`` and otherwise fail with ``invalid-authzid`` (RFC 6120
§6.4.6). A syntactically bad authzid already fails here with ``invalid-authzid``.

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
import enum
import hashlib
import hmac
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

from precis_i18n import get_profile

from roost.auth.credentials import (
    DEFAULT_ITERATIONS,
    Credentials,
    ScramKeys,
    hashlib_name,
)


@dataclass(frozen=True, slots=True)
class Challenge:
    """Send ``<challenge/>`` with this data."""

    data: bytes


@dataclass(frozen=True, slots=True)
class NeedCredentials:
    """Look up ``username`` (raw authcid; normalise it first) and call ``credentials()``."""

    username: str


@dataclass(frozen=True, slots=True)
class VerifyPassword:
    """Check ``password`` against ``credentials`` off the event loop (PBKDF2) and call
    ``password_checked(valid)``; unknown users come with fake keys (same cost)."""

    credentials: Credentials = field(repr=False)
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Success:
    """Send ``<success/>`` (with ``data`` when not None); the driver must check ``authzid``."""

    data: bytes | None
    username: str
    authzid: str | None


@dataclass(frozen=True, slots=True)
class Failure:
    """Send ``<failure/>`` with an RFC 6120 §6.5 condition."""

    condition: str
    text: str | None = None


SaslStep = Challenge | NeedCredentials | VerifyPassword | Success | Failure
_End = TypeVar("_End", bound=Success | Failure)

_SCRAM_HASHES: Final = {
    "SCRAM-SHA-512": "SHA-512",
    "SCRAM-SHA-256": "SHA-256",
    "SCRAM-SHA-1": "SHA-1",
}
_PLUS: Final = "-PLUS"
_SSDP_ITEM_SEPARATOR: Final = "\x1e"  # XEP-0474 §5.1
_SSDP_LIST_SEPARATOR: Final = "\x1f"
_CB_NAME_CHARS: Final = frozenset(string.ascii_letters + string.digits + ".-")
# Attribute names RFC 5802 §5.1 defines; an "extension" reusing one of them is junk.
_SCRAM_ATTRIBUTES: Final = frozenset("amnrcsipve")
_FAKE_SALT_LENGTH: Final = 16  # as credentials.derive
_PROCESS_SECRET: Final = secrets.token_bytes(32)
_USERNAME_PROFILE = get_profile("UsernameCaseMapped")


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


def offered_mechanisms(*, tls: bool, channel_binding: bool) -> list[str]:
    """Mechanisms to advertise, most preferred first (PLAIN only over TLS, RFC 6120 §13.8)."""
    mechanisms = [m + _PLUS for m in _SCRAM_HASHES] if channel_binding else []
    mechanisms += list(_SCRAM_HASHES)
    if tls:
        mechanisms.append("PLAIN")
    return mechanisms


class _State(enum.Enum):
    START = enum.auto()
    FIRST = enum.auto()  # sent an empty challenge, waiting for the initial message
    CREDENTIALS = enum.auto()
    VERIFY = enum.auto()  # PLAIN: waiting for the password check
    FINAL = enum.auto()  # SCRAM: sent server-first, waiting for client-final
    DONE = enum.auto()


class SaslServer:
    """One SASL exchange with one client (see the module docstring)."""

    __slots__ = ("_mechanism", "_setup_failure", "_state")

    def __init__(
        self,
        mechanism: str,
        *,
        offered: Sequence[str],
        cb_type: str = "tls-server-end-point",
        cb_data: bytes | None = None,
        tls: bool,
        unknown_user_secret: bytes | None = None,
    ) -> None:
        """Prepare the exchange; a mechanism we cannot run fails at ``start()``.

        ``unknown_user_secret`` keys the fake salts of unknown users; pass one shared by all
        processes of a cluster (else each process's random secret gives another salt).
        """
        self._state = _State.START
        self._mechanism: _Plain | _Scram | None = None
        self._setup_failure: Failure | None = None
        secret = unknown_user_secret or _PROCESS_SECRET
        if mechanism == "PLAIN" and not tls:
            self._setup_failure = Failure("encryption-required", "PLAIN needs TLS")
        elif mechanism not in offered:
            self._setup_failure = Failure("invalid-mechanism")
        elif mechanism == "PLAIN":
            self._mechanism = _Plain(secret)
        else:
            self._mechanism = self._make_scram(mechanism, offered, cb_type, cb_data, secret)

    def _make_scram(
        self,
        mechanism: str,
        offered: Sequence[str],
        cb_type: str,
        cb_data: bytes | None,
        secret: bytes,
    ) -> _Scram | None:
        plus = mechanism.endswith(_PLUS)
        hash_name = _SCRAM_HASHES.get(mechanism.removesuffix(_PLUS))
        if hash_name is None or (plus and not cb_data):
            self._setup_failure = Failure("invalid-mechanism")
            return None
        binding = (cb_type, cb_data or b"") if plus else None
        plus_offered = any(m.endswith(_PLUS) for m in offered)
        advertised_cb = [cb_type] if cb_data is not None else None  # as c2s's features
        ssdp = downgrade_protection_hash(hash_name, offered, advertised_cb)
        return _Scram(hash_name, binding, plus_offered, ssdp, secret)

    @property
    def done(self) -> bool:
        """True once Success or Failure has been returned."""
        return self._state is _State.DONE

    def start(self, initial: bytes | None) -> SaslStep:
        """Handle ``<auth/>``: None = no initial response, b"" = an empty one ("=")."""
        if self._state is not _State.START:
            return self._out_of_order()
        if self._mechanism is None:
            return self._end(self._setup_failure or Failure("invalid-mechanism"))
        if initial is None:
            self._state = _State.FIRST
            return Challenge(b"")
        return self._first(self._mechanism, initial)

    def respond(self, data: bytes) -> SaslStep:
        """Handle ``<response/>``."""
        if self._mechanism is None:
            return self._out_of_order()
        if self._state is _State.FIRST:
            return self._first(self._mechanism, data)
        if self._state is _State.FINAL and isinstance(self._mechanism, _Scram):
            return self._end(self._mechanism.final(data))
        return self._out_of_order()

    def credentials(self, creds: Credentials | None) -> SaslStep:
        """Continue after ``NeedCredentials`` with the user's keys, or None if unknown."""
        if self._state is not _State.CREDENTIALS or self._mechanism is None:
            return self._out_of_order()
        step = self._mechanism.credentials(creds)
        if isinstance(step, Challenge):
            self._state = _State.FINAL
            return step
        if isinstance(step, VerifyPassword):
            self._state = _State.VERIFY
            return step
        return self._end(step)

    def password_checked(self, valid: bool) -> Success | Failure:
        """Continue after ``VerifyPassword`` with the result of the check."""
        if self._state is not _State.VERIFY or not isinstance(self._mechanism, _Plain):
            return self._out_of_order()
        return self._end(self._mechanism.checked(valid))

    def abort(self) -> Failure:
        """Handle ``<abort/>`` (RFC 6120 §6.4.4)."""
        if self._state is _State.DONE:
            return self._out_of_order()
        return self._end(Failure("aborted"))

    def _first(self, mechanism: _Plain | _Scram, data: bytes) -> SaslStep:
        step = mechanism.first(data)
        if isinstance(step, NeedCredentials):
            self._state = _State.CREDENTIALS
            return step
        return self._end(step)

    def _out_of_order(self) -> Failure:
        return self._end(Failure("malformed-request", "unexpected SASL step"))

    def _end(self, step: _End) -> _End:
        self._state = _State.DONE
        return step


# --- PLAIN (RFC 4616) ---------------------------------------------------------------------


class _Plain:
    """message = [authzid] NUL authcid NUL passwd, UTF-8, no other NUL."""

    __slots__ = ("_authzid", "_known", "_password", "_secret", "_username")

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._username = ""
        self._password = ""
        self._authzid: str | None = None
        self._known = False

    def first(self, data: bytes) -> NeedCredentials | Failure:
        fields = data.split(b"\x00")
        if len(fields) != 3 or not fields[1] or not fields[2]:
            return Failure("malformed-request", "PLAIN wants [authzid] NUL authcid NUL passwd")
        try:
            self._username = fields[1].decode()
            self._password = fields[2].decode()
        except UnicodeDecodeError:
            return Failure("malformed-request", "PLAIN fields must be UTF-8")
        try:
            self._authzid = fields[0].decode() or None
        except UnicodeDecodeError:
            return Failure("invalid-authzid", "the authzid must be UTF-8")
        return NeedCredentials(self._username)

    def credentials(self, creds: Credentials | None) -> VerifyPassword:
        # An unknown user costs the same PBKDF2 as a known one.
        keys = creds or {"SHA-256": _fake_keys("SHA-256", self._username, self._secret)}
        self._known = bool(creds)
        password, self._password = self._password, ""
        return VerifyPassword(keys, password)

    def checked(self, valid: bool) -> Success | Failure:
        if not (valid and self._known):
            return Failure("not-authorized")
        return Success(None, self._username, self._authzid)


# --- SCRAM (RFC 5802 §5, §7) --------------------------------------------------------------


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


class _Scram:
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
        self._keys = keys or _fake_keys(self._hash, self._first.username, self._secret)
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


def _fake_keys(hash_name: str, username: str, secret: bytes) -> ScramKeys:
    """Keys for an unknown user: a salt that is stable per (normalised) name, no password."""
    try:
        canonical: str = _USERNAME_PROFILE.enforce(username)
    except UnicodeError:
        canonical = username
    seed = hmac.new(secret, f"{hash_name}\x00{canonical}".encode(), "sha512").digest()
    name = hashlib_name(hash_name)
    stored_key = hashlib.new(name, seed[32:]).digest()
    server_key = hmac.new(seed[32:], b"Server Key", name).digest()
    return ScramKeys(seed[:_FAKE_SALT_LENGTH], DEFAULT_ITERATIONS, stored_key, server_key)


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
