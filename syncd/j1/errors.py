"""Exceptions raised by the J1 sync API client.

Messages carry the HTTP status, the J1 error code and the server's (redacted, truncated) message,
never request headers or the API key, so they are safe to log.
"""

from __future__ import annotations

from typing import Any


class J1Error(Exception):
    """A sync API call failed; `status` is None when no HTTP response was received."""

    def __init__(self, status: int | None, code: str | None, message: str, *, attempts: int = 1) -> None:
        super().__init__(f"J1 sync API error (status={status}, code={code}): {message}")
        self.status = status
        self.code = code
        self.message = message
        self.attempts = attempts


class J1AuthError(J1Error):
    """401/403: wrong key, account or permissions; retrying cannot help."""


class J1JobEndedError(J1Error):
    """400 JOB_NOT_AWAITING_UPLOADS: the job already ended or was closed; fatal for this job."""


class J1PayloadTooLargeError(J1Error):
    """413 from the server (the client splits batches on it; raised when one object is too big)."""


class J1ObjectTooLargeError(J1Error):
    """One serialized object exceeds the batch size, so it can never be uploaded."""


class J1RetryExhaustedError(J1Error):
    """Transient failures (429, 5xx, transport) outlasted the retry budget or Retry-After cap."""

    def __init__(
        self,
        status: int | None,
        code: str | None,
        message: str,
        *,
        attempts: int = 1,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, code, message, attempts=attempts)
        self.retry_after = retry_after


class J1JobFailedError(J1Error):
    """The job ended in ABORTED* or ERROR_* instead of FINISHED."""

    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(
            None, str(job.get("status")), f"job {job.get('id')} ended with status {job.get('status')}"
        )
        self.job = job


class J1TimeoutError(J1Error):
    """The job did not reach a terminal status in time; `job` is the last status seen (or None)."""

    def __init__(self, job_id: str, timeout: float, job: dict[str, Any] | None) -> None:
        status = job.get("status") if job else None
        super().__init__(
            None, "TIMEOUT", f"job {job_id} not finished after {timeout:g}s (last status {status})"
        )
        self.job = job
