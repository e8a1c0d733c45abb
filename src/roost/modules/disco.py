"""Service Discovery (XEP-0030 2.5rc3 §3, §4) for the server and for its accounts.

- The server (``domain``): identity ``server/im``; its features are exactly what the loaded
  modules registered with ``api.feature`` (so disco never advertises something that does not
  work); no items yet (services come with MUC, PubSub and components). A node is
  ``item-not-found`` (§3.1, no nodes are served).
- An account (``user@domain``), answered by the server on the account's behalf (RFC 6121
  §8.5.2.1.3, §8.5.1): identity ``account/registered`` (Registry, category "account")
  and the features modules registered with ``api.feature(..., account=True)``; no items yet
  (PEP nodes come later). Following Prosody's ``mod_disco``, only the account itself and
  contacts with a subscription to its presence (``from`` or ``both`` on the account's roster,
  through the roster module's ``RosterService``) are answered; anyone else, and any query
  about an account that does not exist, gets ``service-unavailable`` (the §3.1 error cases;
  one answer for both, so it does not tell whether the account exists). Without a roster
  module only the account itself is answered. A node on an account is ``item-not-found``.
- An iq to a full JID is the client's own disco: the router delivers it.
"""

from __future__ import annotations

from roost.core.module import Module, ModuleAPI, Spec
from roost.core.stanza import BARE, HOST, SELF, IqRequest
from roost.errors import StanzaError
from roost.modules.api import RosterService
from roost.xml.element import Element
from roost.xml.ns import NS_DISCO_INFO, NS_DISCO_ITEMS

SUBSCRIBED = ("from", "both")  # the contact may see the account's presence (RFC 6121 §3)


class Disco(Module):
    """disco#info and disco#items for the host and its accounts."""

    name = "disco"
    implements = (Spec("XEP-0030", "2.5rc3"),)

    def setup(self, api: ModuleAPI) -> None:
        api.identity("server", "im", "roost")
        api.feature(NS_DISCO_INFO)
        api.feature(NS_DISCO_ITEMS)
        api.on_iq("get", HOST, NS_DISCO_INFO, "query", self.host_info)
        api.on_iq("get", HOST, NS_DISCO_ITEMS, "query", self.host_items)
        for addressing in (BARE, SELF):
            api.on_iq("get", addressing, NS_DISCO_INFO, "query", self.account_info)
            api.on_iq("get", addressing, NS_DISCO_ITEMS, "query", self.account_items)

    def host_info(self, request: IqRequest) -> Element:
        """Identities and features of the server."""
        node = request.payload.get("node")
        if node:
            raise StanzaError("item-not-found")
        host = request.host
        query = Element("query", NS_DISCO_INFO)
        for category, type_, name in host.identities:
            identity = query.sub("identity", category=category, type=type_)
            if name:
                identity.attrs["name"] = name
        for var in sorted(set(host.features)):
            query.sub("feature", var=var)
        return query

    def host_items(self, request: IqRequest) -> Element:
        """Items of the server (services come with MUC, PubSub and components)."""
        if request.payload.get("node"):
            raise StanzaError("item-not-found")
        return Element("query", NS_DISCO_ITEMS)

    async def account_info(self, request: IqRequest) -> Element:
        """The account identity and features, to the account and its subscribers."""
        await self._check_access(request)
        query = Element("query", NS_DISCO_INFO)
        query.sub("identity", category="account", type="registered")
        for var in sorted({NS_DISCO_INFO, NS_DISCO_ITEMS, *request.host.account_features}):
            query.sub("feature", var=var)
        return query

    async def account_items(self, request: IqRequest) -> Element:
        """Items of an account (PEP nodes come later): empty."""
        await self._check_access(request)
        return Element("query", NS_DISCO_ITEMS)

    async def _check_access(self, request: IqRequest) -> None:
        """The account itself or a subscribed contact may ask; then a node is not found."""
        account = request.to.bare
        if request.sender.bare == account:
            accounts = self.api.server.storage.accounts
            if not await accounts.exists(account.domain, account.local or ""):
                raise StanzaError("service-unavailable")
        elif not await self._subscribed(request):
            raise StanzaError("service-unavailable")
        if request.payload.get("node"):
            raise StanzaError("item-not-found")

    async def _subscribed(self, request: IqRequest) -> bool:
        """Whether the sender has a subscription to the account's presence."""
        try:
            roster = self.api.service(RosterService)
        except LookupError:
            return False
        return await roster.subscription(request.to.bare, request.sender) in SUBSCRIBED
