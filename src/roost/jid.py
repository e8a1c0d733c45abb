"""XMPP addresses (JIDs): parsing, PRECIS preparation and comparison.

Implements RFC 7622 (XMPP Address Format):

- §3.1 parsing order: split at the first '/', then at the first '@' before it;
- §3.2 domainpart: IP literals (RFC 3986 §3.2.2, IPv6 in brackets, IPv4 dotted quads),
  otherwise IDNA2008 (RFC 5890-5893) with the UTS 46 mapping, stored as lowercase U-labels,
  one trailing label separator ('.' or, after UTS 46 mapping, e.g. U+3002) removed;
- §3.3 localpart: the UsernameCaseMapped profile (RFC 8265 §3.3) plus the characters
  ``" & ' / : < > @`` disallowed by §3.3.1;
- §3.4 resourcepart: the OpaqueString profile (RFC 8265 §4.2);
- each part non-empty and at most 1023 octets of UTF-8 after preparation.

Leniencies, where RFC 7622 leaves room or deployments need it: ASCII domain labels may
contain '_' (used for internal service names; IDNA2008 alone forbids it); domains are not held
to DNS's 253-octet total (XMPP allows 1023), labels are held to 63 octets. IPv6 literals are
stored in their canonical compressed form so that equal addresses compare equal.

Parsing is cached: ``JID.parse`` keeps a bounded LRU keyed on the raw string (docs/architecture.md),
and the common all-ASCII parts skip the Unicode machinery (the result is the same; the tests
check the fast paths against precis-i18n).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Final, final

import idna
from precis_i18n import get_profile

__all__ = ["JID", "JIDError", "normalize_domain", "normalize_localpart", "normalize_resource"]

MAX_PART_OCTETS: Final = 1023  # RFC 7622 §3.2-§3.4, after preparation, in UTF-8
# NFC composes at most 4 code points into one and the other PRECIS mappings never shrink a
# string, so a longer raw local- or resourcepart cannot prepare to 1023 octets: reject it
# unprepared. (For a domainpart UTS 46 may delete ignorable code points; such padding is
# refused too.)
_MAX_RAW_PART_CHARS: Final = 4 * MAX_PART_OCTETS
_CACHE_SIZE: Final = 65536
# Longer raw strings are parsed every time, so that a peer sending many distinct huge
# addresses cannot fill the cache with megabytes.
_CACHEABLE_RAW_CHARS: Final = 256

_USERNAME = get_profile("UsernameCaseMapped")
_OPAQUE = get_profile("OpaqueString")

# RFC 7622 §3.3.1: allowed by the Username profile, disallowed in a localpart.
_LOCALPART_FORBIDDEN: Final = frozenset("\"&'/:<>@")
# ASCII code points the IdentifierClass allows (printable, no space), less the above.
_ASCII_LOCALPART = re.compile(
    "["
    + "".join(re.escape(chr(c)) for c in range(0x21, 0x7F) if chr(c) not in _LOCALPART_FORBIDDEN)
    + "]+"
)
# Lowercase LDH labels (RFC 5890 §2.3.1) with '_' tolerated, at most 63 octets each.
_ASCII_LABEL: Final = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_ASCII_LABEL_RE = re.compile(_ASCII_LABEL)
_ASCII_DOMAIN = re.compile(rf"{_ASCII_LABEL}(?:\.{_ASCII_LABEL})*")
_ACE_PREFIX: Final = "xn--"


class JIDError(ValueError):
    """Invalid address; maps to the stanza error jid-malformed (RFC 6120 §8.3.3.8)."""


@final
class JID:
    """An XMPP address, immutable; parts are stored prepared (RFC 7622 §3).

    The constructor trusts its arguments to be prepared already; use :meth:`parse` for
    anything that came from the network or a user.
    """

    __slots__ = ("_bare", "_hash", "_str", "domain", "local", "resource")

    local: str | None
    domain: str
    resource: str | None
    _str: str
    _bare: JID | None
    _hash: int

    def __init__(self, local: str | None, domain: str, resource: str | None = None) -> None:
        text = domain if local is None else f"{local}@{domain}"
        if resource is not None:
            text = f"{text}/{resource}"
        setattr_ = object.__setattr__
        setattr_(self, "local", local)
        setattr_(self, "domain", domain)
        setattr_(self, "resource", resource)
        setattr_(self, "_str", text)
        setattr_(self, "_bare", self if resource is None else None)
        setattr_(self, "_hash", hash(text))

    @staticmethod
    def parse(raw: str) -> JID:
        """Parse and prepare ``raw``; raise :class:`JIDError` if it is not a valid address."""
        if len(raw) <= _CACHEABLE_RAW_CHARS:
            return _parse_cached(raw)
        return _parse(raw)

    @property
    def bare(self) -> JID:
        """This address without its resource (``self`` when already bare)."""
        bare = self._bare
        if bare is None:
            bare = JID(self.local, self.domain)
            object.__setattr__(self, "_bare", bare)
        return bare

    @property
    def is_bare(self) -> bool:
        """True when the address has no resourcepart."""
        return self.resource is None

    def with_resource(self, resource: str) -> JID:
        """The full address ``local@domain/resource``; ``resource`` is prepared first."""
        return JID(self.local, self.domain, normalize_resource(resource))

    def __str__(self) -> str:
        return self._str

    def __repr__(self) -> str:
        return f"JID.parse({self._str!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JID):
            return self._str == other._str
        return NotImplemented

    def __hash__(self) -> int:
        return self._hash

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"JID is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"JID is immutable (cannot delete {name!r})")

    def __reduce__(self) -> tuple[type[JID], tuple[str | None, str, str | None]]:
        return (JID, (self.local, self.domain, self.resource))

    def __copy__(self) -> JID:
        return self

    def __deepcopy__(self, memo: object) -> JID:
        return self


def _parse(raw: str) -> JID:
    """RFC 7622 §3.1: split at the first '/', then at the first '@' before it; prepare."""
    head, slash, rest = raw.partition("/")
    resource = normalize_resource(rest) if slash else None
    local_raw, at, domain_raw = head.partition("@")
    if not at:
        return JID(None, normalize_domain(head), resource)
    return JID(normalize_localpart(local_raw), normalize_domain(domain_raw), resource)


_parse_cached = functools.lru_cache(maxsize=_CACHE_SIZE)(_parse)


def _check_length(part: str, prepared: str) -> str:
    # UTF-8 takes at most 4 octets a code point: short strings need no encoding.
    if len(prepared) > MAX_PART_OCTETS // 4 and len(prepared.encode()) > MAX_PART_OCTETS:
        raise JIDError(f"{part} longer than {MAX_PART_OCTETS} octets")
    return prepared


def _check_raw(part: str, raw: str) -> None:
    if not raw:
        raise JIDError(f"empty {part}")
    if len(raw) > _MAX_RAW_PART_CHARS:
        raise JIDError(f"{part} longer than {MAX_PART_OCTETS} octets")


def normalize_localpart(local: str) -> str:
    """Prepare a localpart (RFC 7622 §3.3: UsernameCaseMapped plus §3.3.1's exclusions)."""
    _check_raw("localpart", local)
    if local.isascii():
        # For ASCII the profile reduces to: printable, no space, lowercase (RFC 8265 §3.3).
        if _ASCII_LOCALPART.fullmatch(local) is None:
            bad = next(c for c in local if _ASCII_LOCALPART.fullmatch(c) is None)
            raise JIDError(f"localpart: character {bad!r} not allowed")
        return _check_length("localpart", local.lower())
    try:
        prepared: str = _USERNAME.enforce(local)
    except UnicodeEncodeError as exc:
        raise JIDError(f"localpart: {exc.reason}") from None
    bad_chars = _LOCALPART_FORBIDDEN.intersection(prepared)
    if bad_chars:
        raise JIDError(f"localpart: character {min(bad_chars)!r} not allowed")
    return _check_length("localpart", prepared)


def normalize_resource(resource: str) -> str:
    """Prepare a resourcepart (RFC 7622 §3.4: the OpaqueString profile, RFC 8265 §4.2)."""
    _check_raw("resourcepart", resource)
    if resource.isascii():
        # For ASCII the profile reduces to: printable characters and space, unchanged.
        if not resource.isprintable():
            bad = next(c for c in resource if not c.isprintable())
            raise JIDError(f"resourcepart: character {bad!r} not allowed")
        return _check_length("resourcepart", resource)
    try:
        prepared: str = _OPAQUE.enforce(resource)
    except UnicodeEncodeError as exc:
        raise JIDError(f"resourcepart: {exc.reason}") from None
    return _check_length("resourcepart", prepared)


def normalize_domain(domain: str) -> str:
    """Prepare a domainpart (RFC 7622 §3.2): IP literal, or IDNA2008 U-labels in lowercase."""
    _check_raw("domainpart", domain)
    if domain.isascii():
        prepared = domain.lower()
        if prepared.endswith("."):
            prepared = prepared[:-1]
        if prepared.startswith("["):
            return _ip_literal(prepared)
        if _ASCII_DOMAIN.fullmatch(prepared) is not None and "--" not in prepared:
            return _check_length("domainpart", prepared)
    else:
        try:
            prepared = idna.uts46_remap(domain, std3_rules=False, transitional=False)
        except ValueError as exc:
            raise JIDError(f"domainpart: {exc}") from None
        if prepared.endswith("."):
            prepared = prepared[:-1]
    if not prepared:
        raise JIDError("empty domainpart")
    labels = [_prepare_label(label) for label in prepared.split(".")]
    return _check_length("domainpart", ".".join(labels))


def _prepare_label(label: str) -> str:
    """One lowercase label: LDH (A-labels turned into U-labels) or a valid U-label."""
    if not label:
        raise JIDError("domainpart: empty label")
    if label.isascii():
        if _ASCII_LABEL_RE.fullmatch(label) is None:
            raise JIDError(f"domainpart: label {label!r} not allowed")
        if label[2:4] != "--":
            return label
        if not label.startswith(_ACE_PREFIX):
            raise JIDError(f"domainpart: label {label!r} has '--' in 3rd and 4th position")
        return _a_label_to_u_label(label)
    try:
        idna.alabel(label)  # validates the U-label (RFC 5891 §5.4) and its 63-octet A-label
    except ValueError as exc:
        raise JIDError(f"domainpart: {exc}") from None
    return label


def _a_label_to_u_label(label: str) -> str:
    try:
        u_label = idna.ulabel(label)
        round_trip = idna.alabel(u_label).decode("ascii")
    except ValueError as exc:
        raise JIDError(f"domainpart: {exc}") from None
    # RFC 5891 §5.3: a valid A-label decodes to a non-ASCII U-label that encodes back to it.
    if u_label.isascii() or round_trip != label:
        raise JIDError(f"domainpart: {label!r} is not a valid A-label")
    return u_label


def _ip_literal(literal: str) -> str:
    """RFC 3986 §3.2.2 IP-literal holding an IPv6 address (no zone, no IPvFuture)."""
    inner = literal[1:-1] if literal.endswith("]") else ""
    if not inner or "%" in inner:
        raise JIDError(f"domainpart: {literal!r} is not an IPv6 literal")
    try:
        address = ipaddress.IPv6Address(inner)
    except ValueError:
        raise JIDError(f"domainpart: {literal!r} is not an IPv6 literal") from None
    return f"[{address.compressed}]"
