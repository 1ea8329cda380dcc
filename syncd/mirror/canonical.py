"""Canonical JSON and content hashes: equal content gives equal bytes, so hashes detect change."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: the stored and hashed form of every object."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_hash(canonical: str) -> str:
    """sha256 of the canonical JSON text."""
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
