"""The element model: a small slotted tree that keeps mixed content in order.

Design (docs/architecture.md):
- ``name`` is the local name, ``xmlns`` the namespace URI of the element itself. Stanzas of
  every stream kind use the canonical namespace ``jabber:client`` in memory (the parser maps
  ``jabber:server`` / ``jabber:component:accept`` to it), so the router never cares where a
  stanza came from.
- ``attrs`` maps attribute names to values: plain names for unqualified attributes,
  ``"xml:lang"`` for the XML namespace, and Clark notation ``"{uri}local"`` for any other
  namespaced attribute.
- ``children`` holds child elements and text strings interleaved, in document order, so
  XHTML-IM bodies and forwarded payloads survive unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

from roost.xml.ns import NS_CLIENT


class Element:
    """One XML element with its attributes and mixed children."""

    __slots__ = ("attrs", "children", "name", "xmlns")

    def __init__(
        self,
        name: str,
        xmlns: str = NS_CLIENT,
        attrs: dict[str, str] | None = None,
        children: list[Element | str] | None = None,
    ) -> None:
        self.name = name
        self.xmlns = xmlns
        self.attrs: dict[str, str] = {} if attrs is None else attrs
        self.children: list[Element | str] = [] if children is None else children

    def __repr__(self) -> str:
        size = len(self.children)
        return f"<Element {{{self.xmlns}}}{self.name} {self.attrs!r} ({size} children)>"

    # -- reading ---------------------------------------------------------------------------
    def get(self, attr: str, default: str | None = None) -> str | None:
        """Return an attribute value, or ``default``."""
        return self.attrs.get(attr, default)

    def find(self, name: str, xmlns: str | None = None) -> Element | None:
        """Return the first child element with this name (and namespace, if given)."""
        for child in self.children:
            if (
                type(child) is Element
                and child.name == name
                and (xmlns is None or child.xmlns == xmlns)
            ):
                return child
        return None

    def find_ns(self, xmlns: str) -> Element | None:
        """Return the first child element in the given namespace."""
        for child in self.children:
            if type(child) is Element and child.xmlns == xmlns:
                return child
        return None

    def find_text(self, name: str, xmlns: str | None = None) -> str | None:
        """Return the text of the first matching child, or None if there is no such child."""
        child = self.find(name, xmlns)
        return None if child is None else child.text

    def elements(self) -> Iterator[Element]:
        """Iterate over child elements, skipping text."""
        for child in self.children:
            if type(child) is Element:
                yield child

    def first_element(self) -> Element | None:
        """Return the first child element (the payload of an iq), or None."""
        for child in self.children:
            if type(child) is Element:
                return child
        return None

    @property
    def text(self) -> str:
        """The concatenated direct text children."""
        parts = [c for c in self.children if type(c) is str]
        if not parts:
            return ""
        return parts[0] if len(parts) == 1 else "".join(parts)

    # -- building --------------------------------------------------------------------------
    def add(self, child: Element) -> Element:
        """Append a child element and return it (for chained building)."""
        self.children.append(child)
        return child

    def add_text(self, text: str) -> Element:
        """Append text and return self."""
        if text:
            self.children.append(text)
        return self

    def sub(
        self, name: str, xmlns: str | None = None, text: str | None = None, **attrs: str
    ) -> Element:
        """Create a child element (in this element's namespace unless given) and return it."""
        child = Element(name, self.xmlns if xmlns is None else xmlns, attrs or None)
        if text:
            child.children.append(text)
        self.children.append(child)
        return child

    def remove(self, child: Element) -> None:
        """Remove a child element (by identity)."""
        for i, c in enumerate(self.children):
            if c is child:
                del self.children[i]
                return

    def copy(self) -> Element:
        """Return a deep copy (iterative: no recursion per nesting level)."""
        root = Element(self.name, self.xmlns, dict(self.attrs))
        stack: list[tuple[Element, Element]] = [(self, root)]
        while stack:
            src, dst = stack.pop()
            for c in src.children:
                if type(c) is Element:
                    new = Element(c.name, c.xmlns, dict(c.attrs))
                    dst.children.append(new)
                    stack.append((c, new))
                else:
                    dst.children.append(c)
        return root

    def shallow_copy(self) -> Element:
        """Copy this element's attributes and child list; children are shared."""
        return Element(self.name, self.xmlns, dict(self.attrs), list(self.children))
