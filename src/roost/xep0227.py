"""Reads and writes user data in the portable import/export format (XEP-0227 1.1).

A document is ``<server-data xmlns='urn:xmpp:pie:0'>`` holding one ``<host jid=...>`` per
virtual host and one ``<user name=...>`` per account (§4). The account's credentials are
read here: a ``password`` attribute (discouraged by 1.1, still what most exporters write)
and/or ``<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>`` with
``iter-count``, ``salt``, ``server-key`` and ``stored-key`` (base64), one per hash. Every
other child of ``<user>`` (the roster §4.3, offline messages §4.4, private XML §4.5, the
vCard §4.6, ...) is kept as an element for the store that owns it: the store registry
(roost.storage.registry) hands each to the store that claims it, and notes what no store
claims.

The pre-1.0 namespace ``http://www.xmpp.org/extensions/xep-0227.html#ns`` is read too.
XInclude ``<xi:include href='relative'/>`` elements are followed (§5: an importer MUST
support a relative href without parse or xpointer), wherever a host or user may stand;
included files may have a ``<host>`` or ``<user>`` root. DTDs and entity declarations
are refused; comments are skipped. What the reader does not understand is reported in
``UserData.notes`` and left out, never guessed at.

This module is pure: it turns bytes into :class:`UserData` and back, and knows no store.
``roost import`` and ``roost export`` move UserData in and out of storage through the
registry (``import_user``, ``export_user``).
"""

from __future__ import annotations

import base64
import binascii
import pyexpat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from roost.auth.credentials import HASHES, Credentials, ScramKeys
from roost.jid import JIDError, normalize_domain, normalize_localpart
from roost.xml.element import Element
from roost.xml.ns import NS_XML
from roost.xml.serializer import escape_attr, serialize

NS_PIE: Final = "urn:xmpp:pie:0"
NS_PIE_LEGACY: Final = "http://www.xmpp.org/extensions/xep-0227.html#ns"
NS_PIE_SCRAM: Final = "urn:xmpp:pie:0#scram"
NS_XINCLUDE: Final = "http://www.w3.org/2001/XInclude"
PIE_NAMESPACES: Final = (NS_PIE, NS_PIE_LEGACY)
_SEP: Final = "\x01"
_CHUNK: Final = 1 << 16
_DIGEST_SIZES: Final = {"SHA-1": 20, "SHA-256": 32, "SHA-512": 64}


class Xep0227Error(ValueError):
    """The file cannot be read as XEP-0227 data; the message names the file and line."""


@dataclass(slots=True)
class UserData:
    """One account and what belongs to it, as the file holds it (names normalised).

    ``children``: the ``<user>``'s child elements other than credentials, in document order,
    for the stores to read (roost.storage.registry)."""

    host: str
    name: str
    password: str | None = None
    scram: Credentials = field(default_factory=dict)
    children: list[Element] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was left out, and why

    @property
    def jid(self) -> str:
        """The account's bare JID."""
        return f"{self.name}@{self.host}"


# -- reading --------------------------------------------------------------------------------


def read_users(path: Path) -> Iterator[UserData]:
    """The users of a XEP-0227 file (following XIncludes), in document order."""
    yield from _read(path.resolve(), None, ())


def _read(path: Path, host: str | None, chain: tuple[Path, ...]) -> Iterator[UserData]:
    if path in chain:
        raise Xep0227Error(f"{chain[-1]}: XInclude loop back to {path}")
    try:
        file = path.open("rb")
    except OSError as exc:
        raise Xep0227Error(f"{path}: cannot read: {exc.strerror}") from None
    reader = _DocumentReader(path, host)
    with file:
        while True:
            data = file.read(_CHUNK)
            reader.feed(data, final=not data)
            for item in reader.take():
                if isinstance(item, UserData):
                    yield item
                else:
                    href, item_host = item
                    yield from _read((path.parent / href).resolve(), item_host, (*chain, path))
            if not data:
                return


class _DocumentReader:
    """Push parser for one file: collects finished users and the includes to follow."""

    def __init__(self, path: Path, host: str | None) -> None:
        self.path = path
        self.included_host = host  # the host whose <include> named this file
        self.host = host  # the host the next <user> belongs to
        self.outer: list[tuple[str, str]] = []  # open elements above users: (xmlns, name)
        self.building: list[Element] = []  # the open elements of the current user
        self.skipping = 0  # depth inside an element ignored at host or document level
        self.found: list[UserData | tuple[str, str | None]] = []
        p = pyexpat.ParserCreate("UTF-8", _SEP)
        p.buffer_text = True
        p.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
        p.StartDoctypeDeclHandler = self._refuse_dtd
        p.EntityDeclHandler = self._refuse_dtd
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._text
        self.expat = p

    def feed(self, data: bytes, *, final: bool) -> None:
        try:
            self.expat.Parse(data, final)
        except pyexpat.ExpatError as exc:
            raise self.error(pyexpat.ErrorString(exc.code)) from None

    def take(self) -> list[UserData | tuple[str, str | None]]:
        found, self.found = self.found, []
        return found

    def error(self, text: str) -> Xep0227Error:
        line = self.expat.CurrentLineNumber
        return Xep0227Error(f"{self.path}:{line}: {text}")

    def _refuse_dtd(self, *_args: object) -> None:
        raise self.error("DTDs and entity declarations are not allowed")

    def _start(self, raw: str, attrs: dict[str, str]) -> None:
        xmlns, _, name = raw.rpartition(_SEP)
        attrs = {_attr_name(key): value for key, value in attrs.items()}
        if self.building:
            child = Element(name, xmlns, attrs)
            self.building[-1].children.append(child)
            self.building.append(child)
        elif self.skipping:
            self.skipping += 1
        elif xmlns in PIE_NAMESPACES and name == "user" and self._user_allowed():
            self.building.append(Element(name, xmlns, attrs))
        else:
            self._start_outer(xmlns, name, attrs)

    def _user_allowed(self) -> bool:
        return (not self.outer and self.host is not None) or (
            bool(self.outer) and self.outer[-1][1] == "host"
        )

    def _start_outer(self, xmlns: str, name: str, attrs: dict[str, str]) -> None:
        depth = len(self.outer)
        if xmlns == NS_XINCLUDE and name == "include" and depth > 0:
            self.found.append((self._include_href(attrs), self.host))
            self.skipping = 1
            return
        if xmlns in PIE_NAMESPACES and name == "host" and depth <= 1:
            if depth == 1 and self.outer[0][1] != "server-data":
                raise self.error("<host> must be in <server-data>")
            raw = attrs.get("jid")
            if not raw:
                raise self.error("<host> without a jid attribute")
            try:
                self.host = normalize_domain(raw)
            except JIDError as exc:
                raise self.error(f"<host jid={raw!r}>: {exc}") from None
        elif not (xmlns in PIE_NAMESPACES and name == "server-data" and depth == 0):
            if xmlns in PIE_NAMESPACES and name == "user":
                raise self.error("<user> outside a <host>")
            if depth == 0:
                raise self.error(f"not XEP-0227 data: the root element is {{{xmlns}}}{name}")
            self.skipping = 1  # unknown data beside hosts/users: left out (§4)
            return
        self.outer.append((xmlns, name))

    def _include_href(self, attrs: dict[str, str]) -> str:
        href = attrs.get("href")
        if not href or "://" in href or href.startswith("/"):
            raise self.error("xi:include needs a relative href")
        if attrs.get("parse", "xml") != "xml" or "xpointer" in attrs:
            raise self.error("xi:include with parse or xpointer is not supported")
        return href

    def _end(self, _raw: str) -> None:
        if self.building:
            done = self.building.pop()
            if not self.building:
                if self.host is None:
                    raise self.error("<user> outside a <host>")
                try:
                    self.found.append(parse_user(done, self.host))
                except Xep0227Error as exc:
                    raise self.error(str(exc)) from None
        elif self.skipping:
            self.skipping -= 1
        elif self.outer and self.outer.pop()[1] == "host":
            self.host = self.included_host

    def _text(self, data: str) -> None:
        if self.building:
            self.building[-1].children.append(data)


def _attr_name(raw: str) -> str:
    if _SEP not in raw:
        return raw
    uri, _, local = raw.partition(_SEP)
    return "xml:" + local if uri == NS_XML else "{" + uri + "}" + local


def parse_user(el: Element, host: str) -> UserData:
    """A ``<user>`` element as UserData; Xep0227Error when the user cannot be imported."""
    raw_name = el.get("name")
    if not raw_name:
        raise Xep0227Error("<user> without a name attribute")
    try:
        name = normalize_localpart(raw_name)
    except JIDError as exc:
        raise Xep0227Error(f"<user name={raw_name!r}>: {exc}") from None
    user = UserData(host, name, password=el.get("password") or None)
    for child in el.elements():
        _read_child(user, child)
    return user


def _read_child(user: UserData, child: Element) -> None:
    if (child.xmlns, child.name) == (NS_PIE_SCRAM, "scram-credentials"):
        _read_scram(user, child)
    else:
        user.children.append(child)


def _read_scram(user: UserData, el: Element) -> None:
    mechanism = el.get("mechanism") or ""
    hash_name = mechanism.removeprefix("SCRAM-").removesuffix("-PLUS")
    if not mechanism.startswith("SCRAM-") or hash_name not in HASHES:
        user.notes.append(f"{user.jid}: SCRAM mechanism {mechanism!r} not supported, left out")
        return
    try:
        iterations = int(el.find_text("iter-count", NS_PIE_SCRAM) or "")
        salt, server_key, stored_key = (
            base64.b64decode(el.find_text(part, NS_PIE_SCRAM) or "", validate=True)
            for part in ("salt", "server-key", "stored-key")
        )
    except (ValueError, binascii.Error):
        user.notes.append(f"{user.jid}: {mechanism} credentials malformed, left out")
        return
    size = _DIGEST_SIZES[hash_name]
    if iterations < 1 or not salt or len(server_key) != size or len(stored_key) != size:
        user.notes.append(f"{user.jid}: {mechanism} credentials incomplete, left out")
        return
    user.scram[hash_name] = ScramKeys(salt, iterations, stored_key, server_key)


# -- writing --------------------------------------------------------------------------------


def user_element(user: UserData) -> Element:
    """The ``<user>`` element for a user (what :func:`parse_user` reads back)."""
    el = Element("user", NS_PIE, {"name": user.name})
    if user.password is not None:
        el.attrs["password"] = user.password
    for hash_name, keys in sorted(user.scram.items()):
        scram = el.sub("scram-credentials", NS_PIE_SCRAM, mechanism=f"SCRAM-{hash_name}")
        scram.sub("iter-count", NS_PIE_SCRAM, text=str(keys.iterations))
        for part, value in (
            ("salt", keys.salt),
            ("server-key", keys.server_key),
            ("stored-key", keys.stored_key),
        ):
            scram.sub(part, NS_PIE_SCRAM, text=base64.b64encode(value).decode())
    el.children.extend(user.children)
    return el


def write_document(out: BinaryIO, hosts: Iterable[tuple[str, Iterable[Element]]]) -> int:
    """Write a whole document from ``<user>`` elements, one host and user at a time; the
    number of users written."""
    count = 0
    out.write(f"<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='{NS_PIE}'>\n".encode())
    for host, users in hosts:
        out.write(f"  <host jid='{escape_attr(host)}'>\n".encode())
        for user in users:
            out.write(b"    " + serialize(user, NS_PIE) + b"\n")
            count += 1
        out.write(b"  </host>\n")
    out.write(b"</server-data>\n")
    return count
