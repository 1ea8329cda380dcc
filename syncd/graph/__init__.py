"""Microsoft Graph access: app-only tokens, a retrying client, delta rounds, subscriptions."""

from syncd.graph.auth import MsalTokenProvider, StaticTokenProvider, TokenProvider
from syncd.graph.client import GraphClient
from syncd.graph.clouds import CLOUDS, Cloud, get_cloud
from syncd.graph.delta import DeltaPage, delta_pages, initial_delta_url, is_removed, latest_delta_url
from syncd.graph.errors import (
    DeltaResetRequired,
    GraphAuthError,
    GraphError,
    GraphTransportError,
    NotApplicableTenant,
    NotFound,
    PermissionDenied,
    Throttled,
    Unauthorized,
)
from syncd.graph.subscriptions import SubscriptionsApi, max_expiration

__all__ = [
    "CLOUDS",
    "Cloud",
    "DeltaPage",
    "DeltaResetRequired",
    "GraphAuthError",
    "GraphClient",
    "GraphError",
    "GraphTransportError",
    "MsalTokenProvider",
    "NotApplicableTenant",
    "NotFound",
    "PermissionDenied",
    "StaticTokenProvider",
    "SubscriptionsApi",
    "Throttled",
    "TokenProvider",
    "Unauthorized",
    "delta_pages",
    "get_cloud",
    "initial_delta_url",
    "is_removed",
    "latest_delta_url",
    "max_expiration",
]
