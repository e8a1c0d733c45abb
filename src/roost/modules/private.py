"""Private XML storage: each user keeps XML fragments on the server (XEP-0049 1.2).

- Get and set are ``<query xmlns='jabber:iq:private'/>`` to the user's own account (no 'to',
  or the user's bare JID). Each fragment is stored under its qualified name, namespace and
  element name (Prosody's key; ejabberd keys by namespace only), in the private XML store
  (``roost.storage.private``, which also exports and imports them, XEP-0227 §4.5).
- Set (§2.3): at least one child, else ``not-acceptable``; several children are allowed (an
  IQ set "MAY contain multiple elements") and each is stored under its own name. A child with
  no content and no attributes removes what was stored (Prosody); a later get answers it as
  sent, which is what the client would have read back anyway.
- Get (§2.3): exactly one child, the fragment asked for: no child is ``not-acceptable`` (the
  XEP's example; its table's "Bad Format" is not an XMPP stanza condition), several are
  ``bad-request`` ("a client MUST NOT query for more than one namespace"). The answer is the
  stored fragment, or the child as sent when nothing is stored.
- Reserved namespaces (§2.3): fragments in ``jabber:*`` namespaces are refused with
  ``not-acceptable`` (refusing is optional in the XEP; roost refuses). The XEP also
  lists ``http://jabber.org/*`` and ``vcard-temp`` as reserved; those are accepted, as
  Prosody and ejabberd do.
- Another user's storage (§2.3, §3): get or set to someone else's bare JID is ``forbidden``
  (the XEP's preferred condition; docs/configuration.md [limits]).
- Size: each fragment is bounded by the stanza size limit; a user keeps at most
  ``MAX_ITEMS`` fragments (a new one past it is ``policy-violation``; a request is stored
  all or nothing).
- Discovery: the host advertises ``jabber:iq:private`` (as Prosody does).
"""

from __future__ import annotations

from typing import Final

from roost.core.module import Module, ModuleAPI, Spec
from roost.core.stanza import BARE, SELF, IqRequest
from roost.errors import StanzaError
from roost.storage.private import RESERVED_PREFIX, PrivateStore, fragment_name
from roost.xml.element import Element
from roost.xml.ns import NS_PRIVATE
from roost.xml.parser import parse_fragment
from roost.xml.serializer import serialize

MAX_ITEMS: Final = 100  # fragments per user


def is_empty(element: Element) -> bool:
    """A fragment with no content and no attributes (a set of it removes the stored one)."""
    return not element.children and not element.attrs


class PrivateStorage(Module):
    """Store and return users' private XML fragments."""

    name = "private"
    implements = (Spec("XEP-0049", "1.2", note="jabber:* namespaces refused"),)

    def setup(self, api: ModuleAPI) -> None:
        self.fragments = api.store(PrivateStore)
        api.feature(NS_PRIVATE)
        api.on_iq("get", SELF, NS_PRIVATE, "query", self.get)
        api.on_iq("set", SELF, NS_PRIVATE, "query", self.set)
        api.on_iq("get", BARE, NS_PRIVATE, "query", self.refuse)
        api.on_iq("set", BARE, NS_PRIVATE, "query", self.refuse)

    def refuse(self, request: IqRequest) -> None:
        """Someone else's private storage (§2.3)."""
        raise StanzaError("forbidden", "private XML belongs to its owner only")

    async def get(self, request: IqRequest) -> Element:
        """The fragment asked for, or the request's child when nothing is stored."""
        children = fragments(request.payload)
        if len(children) > 1:
            raise StanzaError("bad-request", "ask for one fragment per request")
        wanted = children[0]
        user = request.to
        data = await self.fragments.get(user.domain, user.local or "", fragment_name(wanted))
        query = Element("query", NS_PRIVATE)
        query.add(wanted if data is None else parse_fragment(data))
        return query

    async def set(self, request: IqRequest) -> None:
        """Store (or, when empty, remove) each child under its qualified name."""
        children = fragments(request.payload)
        changes = {
            fragment_name(child): None if is_empty(child) else serialize(child)
            for child in children
        }
        host, user = request.to.domain, request.to.local or ""
        if not await self.fragments.change(host, user, changes, limit=MAX_ITEMS):
            raise StanzaError("policy-violation", f"at most {MAX_ITEMS} private XML fragments")


def fragments(query: Element) -> list[Element]:
    """The children of a private query, checked: at least one, none reserved (§2.3)."""
    children = list(query.elements())
    if not children:
        raise StanzaError("not-acceptable", "name the fragment (an element in its namespace)")
    for child in children:
        if child.xmlns.startswith(RESERVED_PREFIX):
            raise StanzaError("not-acceptable", f"the namespace {child.xmlns!r} is reserved")
    return children
