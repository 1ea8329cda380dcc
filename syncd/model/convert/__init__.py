"""Pure converters: Graph JSON in, J1 entities and relationships out (no I/O, no clock)."""

from syncd.model.convert.common import ConvertContext, Derived, account_key

__all__ = ["ConvertContext", "Derived", "account_key"]
