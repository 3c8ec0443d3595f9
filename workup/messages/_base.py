"""Base struct for messages: camelCase on the wire, keyword-only, no unknown fields."""

import msgspec

__all__ = ["Message"]


class Message(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    pass
