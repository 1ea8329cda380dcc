"""Retry-After, exponential backoff with jitter, and the retry policy of the HTTP clients.

One reading of ``Retry-After`` for every client (Graph, J1, alert delivery), because three
readings once disagreed on the edge cases. RFC 9110 §10.2.3 allows two forms:

- *delay-seconds*: a non-negative number of seconds. Fractions are accepted (Graph and some
  proxies send ``"1.5"``). A negative number, NaN or infinity is not delay-seconds: ignored.
- *HTTP-date* (§5.6.7): IMF-fixdate ``Sun, 06 Nov 1994 08:49:37 GMT``, the obsolete RFC 850 form
  (also ``GMT``) and asctime ``Sun Nov  6 08:49:37 1994`` (no zone: GMT by definition; a
  recipient MUST accept all three). Any other date needs an explicit zone: a date without one
  could be any local time, so it is ignored. A date in the past means "now" (0 s).

"Ignored" means ``None``: the caller then waits its own backoff, never zero (an ignored header
must not turn into a retry storm). This module imports nothing of syncd, so the Graph layer,
the J1 client and the alerts may all use it.
"""

from __future__ import annotations

import math
import random
import re
import time
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from enum import StrEnum

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Statuses that say "try again later": throttled, or a server or gateway hiccup."""

RETRY_AFTER_MARGIN = 0.005
"""Seconds added to a Retry-After wait, so the retry does not land a hair before the window ends."""

_MAX_EXPONENT = 64
"""2**64 steps is past any cap; a larger exponent would only overflow the float."""

_ASCTIME = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) +(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2}"
    r" +\d{2}:\d{2}:\d{2} +\d{4}$"
)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or None when there is no usable one."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until(text, time.time() if now is None else now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _seconds_until(text: str, now: float) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        if not _ASCTIME.match(text):
            return None
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def backoff(attempt: int, *, base: float, cap: float, low: float = 0.5, high: float = 1.0) -> float:
    """Wait before retry ``attempt`` (1 = the first retry): ``base·2^(attempt-1)`` capped at
    ``cap``, times a random factor in ``[low, high]`` (jitter spreads clients that failed
    together), never above ``cap``."""
    step = min(cap, base * 2.0 ** min(max(attempt - 1, 0), _MAX_EXPONENT))
    return min(cap, step * random.uniform(low, high))


class Verdict(StrEnum):
    """What to do after a failed attempt."""

    RETRY = "retry"
    """Try again after ``Decision.delay`` seconds."""
    FINAL = "final"
    """The answer will not change (not a transient status, or repeating could do harm)."""
    EXHAUSTED = "exhausted"
    """Transient, but every attempt is used."""
    TOO_LONG = "too_long"
    """The server asks for a longer wait than this client will sit through."""


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    delay: float = 0.0

    @property
    def retry(self) -> bool:
        return self.verdict is Verdict.RETRY


@dataclass(frozen=True)
class RetryPolicy:
    """When a request is tried again, and after how long. Pure: no I/O, tested without a socket.

    ``status`` None means no answer at all (timeout, connection error). A 429 was not processed,
    so it is always safe to repeat; a missing answer or a 5xx leaves open whether the request took
    effect, so a request that must not happen twice passes ``repeat_ambiguous=False``.
    """

    max_attempts: int
    backoff_base: float
    backoff_cap: float
    retry_after_cap: float
    """A longer Retry-After is not waited for: the caller fails now (and may come back later)."""
    statuses: frozenset[int] = TRANSIENT_STATUSES
    backoff_floor: bool = False
    """With a Retry-After on a status other than 429, wait at least the backoff too (a 5xx's
    Retry-After is a hint about an outage; a 429's is the throttling window, waited exactly)."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")

    def backoff(self, attempt: int) -> float:
        return backoff(attempt, base=self.backoff_base, cap=self.backoff_cap)

    def retryable(self, status: int | None, *, repeat_ambiguous: bool = True) -> bool:
        """Whether this outcome is worth another attempt at all."""
        if status is not None and status not in self.statuses:
            return False
        return status == 429 or repeat_ambiguous

    def wait(self, attempt: int, status: int | None = None, retry_after: float | None = None) -> Decision:
        """After a retryable failure of ``attempt`` (1-based): retry when, or why not."""
        if retry_after is not None and retry_after > self.retry_after_cap:
            return Decision(Verdict.TOO_LONG)
        if attempt >= self.max_attempts:
            return Decision(Verdict.EXHAUSTED)
        if retry_after is None:
            return Decision(Verdict.RETRY, self.backoff(attempt))
        delay = retry_after + RETRY_AFTER_MARGIN
        if self.backoff_floor and status != 429:
            delay = max(delay, self.backoff(attempt))
        return Decision(Verdict.RETRY, delay)

    def decide(
        self,
        attempt: int,
        status: int | None,
        retry_after: float | None = None,
        *,
        repeat_ambiguous: bool = True,
    ) -> Decision:
        """The whole rule for one failed attempt: ``retryable``, then ``wait``."""
        if not self.retryable(status, repeat_ambiguous=repeat_ambiguous):
            return Decision(Verdict.FINAL)
        return self.wait(attempt, status, retry_after)
