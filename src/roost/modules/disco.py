"""Service Discovery (XEP-0030 2.5rc3 §3, §4, §7, §8) for the server and for its accounts.

- The server (``domain``): identity ``server/im``; its features are exactly what the loaded
  modules registered with ``api.feature`` (so disco never advertises something that does not
  work); no items yet (services come with MUC, PubSub and components). A node is
  ``item-not-found`` (§3.1, no nodes are served).
- An account (``user@domain``), answered by the server on the account's behalf (RFC 6121
  §8.5.2.1.3, §8.5.1): identity ``account/registered`` (Registry, category "account")
  and the features modules registered with ``api.feature(..., account=True)``; no items yet
  (PEP nodes come later). Following Prosody's ``mod_disco``, the account is answered in full
  only to itself and to contacts with a subscription to its presence (``from`` or ``both`` on
  the account's roster, through the roster module's ``RosterService``); without a roster
  module, only to itself. To them a node is ``item-not-found`` (§7: that may be divulged).
- Anyone else, and anyone asking about an account that does not exist, gets the §8 answers
  (directory harvesting): disco#info is ``service-unavailable`` (§8 rule 1, node or not);
  disco#items is an empty result (§8 rule 2.1 for a missing account, node or not; rule 2.2
  and §4.1 "not publicly available" for an existing one), with the node echoed if one was
  asked for (§4.2). The answer is the same whether the account exists or not, so neither
  query tells a stranger which accounts exist. (Prosody answers disco#items to a missing
  account with ``service-unavailable``, the RFC 6121 §8.5.1 default; §8 requires the empty
  result.)
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
        if not await self._authorized(request):
            raise StanzaError("service-unavailable")  # §8 rule 1
        if request.payload.get("node"):
            raise StanzaError("item-not-found")
        query = Element("query", NS_DISCO_INFO)
        query.sub("identity", category="account", type="registered")
        for var in sorted({NS_DISCO_INFO, NS_DISCO_ITEMS, *request.host.account_features}):
            query.sub("feature", var=var)
        return query

    async def account_items(self, request: IqRequest) -> Element:
        """Items of an account: none yet (PEP nodes come later), so an empty result to anyone
        (§8 rule 2); a node is ``item-not-found`` to whom may see the account, else empty."""
        node = request.payload.get("node")
        if node and await self._authorized(request):
            raise StanzaError("item-not-found")
        query = Element("query", NS_DISCO_ITEMS)
        if node:
            query.attrs["node"] = node  # §4.2; §8 rule 2.1: the same, account or not
        return query

    async def _authorized(self, request: IqRequest) -> bool:
        """Whether the sender is the account itself (that exists) or a subscribed contact."""
        account = request.to.bare
        if request.sender.bare == account:
            accounts = self.api.server.storage.accounts
            return await accounts.exists(account.domain, account.local or "")
        return await self._subscribed(request)

    async def _subscribed(self, request: IqRequest) -> bool:
        """Whether the sender has a subscription to the account's presence."""
        try:
            roster = self.api.service(RosterService)
        except LookupError:
            return False
        return await roster.subscription(request.to.bare, request.sender) in SUBSCRIBED
