"""Graph and token errors: typed so callers can react (reset a delta round, skip Intune, ...).

Messages carry the HTTP status, Graph's error code/message and the request id (what Microsoft
support asks for); never request headers, bearer tokens or client secrets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

DELTA_RESET_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})
NOT_APPLICABLE_MESSAGE = "request not applicable to target tenant"
SEGMENT_MESSAGE = "resource not found for the segment"
"""Graph's 400 for a path it does not know (an undocumented or removed navigation property)."""


class GraphError(Exception):
    """A Graph call that failed for good (after the retries that made sense)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        request_id: str | None = None,
        *,
        path: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.path = path
        self.retry_after = retry_after
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = f"Graph {self.status} {self.code}: {self.message}"
        if self.path:
            text += f" [{self.path}]"
        if self.request_id:
            text += f" (request-id {self.request_id})"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, code={self.code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


class DeltaResetRequired(GraphError):
    """The delta/skip token is dead (expired, unknown, tenant reset): start a full round."""

    location: str | None = None
    """The initial query URL Graph sends with ``410 Gone`` (a "synchronization reset"), if any."""


class NotApplicableTenant(GraphError):
    """``400 Request not applicable to target tenant.``: typically a tenant without Intune."""


class SegmentNotFound(GraphError):
    """``400 Resource not found for the segment '...'``: Graph does not know this URL.

    Never "no data": the caller asked for something that does not exist (an undocumented or
    removed endpoint), which the client logs and counts every time.
    """


class PermissionDenied(GraphError):
    """403 / ``Authorization_RequestDenied``: the app lacks a consented permission."""


class NotFound(GraphError):
    """404: the object (or subscription) does not exist (any more)."""


class Unauthorized(GraphError):
    """401 even after a fresh token: the app identity is unknown to the tenant or not allowed."""


class Throttled(GraphError):
    """429/503 still returned after every attempt, or a Retry-After longer than we will wait."""


class GraphTransportError(GraphError):
    """No HTTP answer at all (timeout, connection refused/reset) after every attempt; status 0."""


class GraphAuthError(Exception):
    """Token acquisition failed; ``code`` is ``AADSTS<n>`` when Entra gave one, else MSAL's error.

    ``transient`` says whether trying again later may help (network, 5xx, throttling).
    """

    def __init__(
        self,
        code: str,
        description: str,
        *,
        hint: str | None = None,
        transient: bool = False,
        error: str | None = None,
    ) -> None:
        self.code = code
        self.description = description
        self.hint = hint
        self.transient = transient
        self.error = error
        text = f"token request failed: {code}: {description}"
        if hint:
            text += f" -- hint: {hint}"
        super().__init__(text)

    def __repr__(self) -> str:
        return f"GraphAuthError(code={self.code!r}, transient={self.transient}, hint={self.hint!r})"


def _find_codes(error: Mapping[str, Any]) -> list[str]:
    """The top code and every nested ``innerError.code`` (Graph nests them arbitrarily)."""
    codes: list[str] = []
    node: Any = error
    for _ in range(8):
        if not isinstance(node, Mapping):
            break
        code = node.get("code")
        if isinstance(code, str) and code:
            codes.append(code)
        node = node.get("innerError", node.get("innererror"))
    return codes


def parse_error_body(body: bytes | str | None) -> tuple[str, str, str | None, list[str]]:
    """(code, message, request_id, all codes) from an error body, tolerating anything."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    data: Any = None
    if text.strip():
        try:
            data = json.loads(text)
        except ValueError:
            data = None
    if isinstance(data, Mapping) and isinstance(data.get("error"), Mapping):
        err = data["error"]
        codes = _find_codes(err)
        code = codes[0] if codes else "unknown"
        message = err.get("message")
        inner = err.get("innerError", err.get("innererror"))
        request_id = None
        if isinstance(inner, Mapping):
            rid = inner.get("request-id", inner.get("requestId"))
            request_id = rid if isinstance(rid, str) else None
        return code, message if isinstance(message, str) else "", request_id, codes
    if isinstance(data, Mapping) and isinstance(data.get("error"), str):
        # OAuth-style {"error": "...", "error_description": "..."} (proxies, token-ish endpoints).
        desc = data.get("error_description")
        return data["error"], desc if isinstance(desc, str) else "", None, [data["error"]]
    snippet = " ".join(text.split())[:200]
    return "unknown", snippet, None, []


def batch_item_error(resp: Mapping[str, Any], path: str) -> GraphError:
    """The GraphError of a failed ``$batch`` item (its body is JSON already, its headers any case)."""
    body = resp.get("body")
    raw = body if isinstance(body, str | bytes) else json.dumps(body or {})
    return make_error(int(resp.get("status") or 0), raw, batch_item_headers(resp), path=path)


def batch_item_headers(resp: Mapping[str, Any]) -> dict[str, str]:
    """A ``$batch`` item's headers, names lower-cased (Graph sends them in any case)."""
    return {str(k).lower(): str(v) for k, v in (resp.get("headers") or {}).items()}


def make_error(
    status: int,
    body: bytes | str | None,
    headers: Mapping[str, str],
    *,
    path: str | None = None,
    is_delta: bool = False,
    retry_after: float | None = None,
) -> GraphError:
    """The most specific GraphError for a failed response."""
    code, message, request_id, codes = parse_error_body(body)
    request_id = request_id or headers.get("request-id") or headers.get("x-ms-request-id")
    lowered = {c.lower() for c in codes}
    if (status in (400, 404, 410) and lowered & DELTA_RESET_CODES) or (status == 410 and is_delta):
        reset = DeltaResetRequired(status, code, message, request_id, path=path)
        reset.location = headers.get("Location")
        return reset
    if status == 400 and message.strip().lower().rstrip(".") == NOT_APPLICABLE_MESSAGE:
        return NotApplicableTenant(status, code, message, request_id, path=path)
    if status == 400 and message.strip().lower().startswith(SEGMENT_MESSAGE):
        return SegmentNotFound(status, code, message, request_id, path=path)
    if status == 403 or "authorization_requestdenied" in lowered:
        return PermissionDenied(status, code, message, request_id, path=path)
    if status == 404:
        return NotFound(status, code, message, request_id, path=path)
    if status == 401:
        return Unauthorized(status, code, message, request_id, path=path)
    if status in (429, 503):
        return Throttled(status, code, message, request_id, path=path, retry_after=retry_after)
    return GraphError(status, code, message, request_id, path=path, retry_after=retry_after)
