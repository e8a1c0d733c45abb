"""Service Discovery (XEP-0030 §3, §4) for the server and for accounts.

The server's identity is ``server/im``; its features are exactly what the loaded modules
registered (``api.feature``), so disco never advertises something that does not work.
Account queries are answered by the server on the account's behalf (XEP-0030 §3.3 / RFC 6121
§8.5.1 model): to the account itself only until rosters exist (Prosody also answers
subscribed contacts); anyone else gets ``service-unavailable``, which also hides whether the
account exists.
"""

from __future__ import annotations

from roost.core.module import Module, ModuleAPI, Spec
from roost.core.stanza import BARE, HOST, SELF, IqRequest
from roost.errors import StanzaError
from roost.xml.element import Element
from roost.xml.ns import NS_DISCO_INFO, NS_DISCO_ITEMS


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
        """The account identity, to the account itself."""
        await self._check_account(request)
        query = Element("query", NS_DISCO_INFO)
        query.sub("identity", category="account", type="registered")
        for var in sorted({NS_DISCO_INFO, NS_DISCO_ITEMS, *request.host.account_features}):
            query.sub("feature", var=var)
        return query

    async def account_items(self, request: IqRequest) -> Element:
        """Items of an account (PEP nodes come later): empty."""
        await self._check_account(request)
        return Element("query", NS_DISCO_ITEMS)

    async def _check_account(self, request: IqRequest) -> None:
        if request.payload.get("node"):
            raise StanzaError("item-not-found")
        if request.sender.bare != request.to.bare:
            raise StanzaError("service-unavailable")
        accounts = self.api.server.storage.accounts
        if not await accounts.exists(request.to.domain, request.to.local or ""):
            raise StanzaError("service-unavailable")
