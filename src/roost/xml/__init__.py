"""XML layer: element model, restricted streaming parser, serializer (RFC 6120 §11)."""
