"""JupiterOne side of syncd: the sync API client (and the writer built on it)."""

from syncd.j1.client import SyncApiClient
from syncd.j1.errors import (
    J1AuthError,
    J1Error,
    J1JobEndedError,
    J1JobFailedError,
    J1ObjectTooLargeError,
    J1PayloadTooLargeError,
    J1RetryExhaustedError,
    J1TimeoutError,
)

__all__ = [
    "J1AuthError",
    "J1Error",
    "J1JobEndedError",
    "J1JobFailedError",
    "J1ObjectTooLargeError",
    "J1PayloadTooLargeError",
    "J1RetryExhaustedError",
    "J1TimeoutError",
    "SyncApiClient",
]
