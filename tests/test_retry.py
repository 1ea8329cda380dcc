"""syncd.retry: the one reading of Retry-After, the backoff, and the retry policy (no sockets)."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from syncd.retry import (
    RETRY_AFTER_MARGIN,
    Decision,
    RetryPolicy,
    Verdict,
    backoff,
    parse_retry_after,
)

NOW = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT


def test_delay_seconds() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0") == 0
    assert parse_retry_after(" 0.25 ") == 0.25
    assert parse_retry_after("2.128") == pytest.approx(2.128)  # fractional, as Graph sends it


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "-1", "-3", "-0.5", "nan", "inf", "1 2"])
def test_no_usable_value_is_ignored(value: str | None) -> None:
    # negative, NaN, infinite or unparsable: not delay-seconds; the caller backs off on its own
    assert parse_retry_after(value, now=NOW) is None


def test_http_dates_in_all_three_rfc_9110_forms() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=NOW) == pytest.approx(10)
    assert parse_retry_after("Wednesday, 21-Oct-15 07:28:10 GMT", now=NOW) == pytest.approx(10)
    assert parse_retry_after("Wed Oct 21 07:28:10 2015", now=NOW) == pytest.approx(10)  # asctime: GMT
    assert parse_retry_after("Wed Oct  1 07:28:10 2015", now=NOW - 20 * 86400) == pytest.approx(10)
    assert parse_retry_after(formatdate(NOW + 30, usegmt=True), now=NOW) == pytest.approx(30)


def test_a_date_with_another_explicit_zone_is_read_in_that_zone() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 09:28:10 +0200", now=NOW) == pytest.approx(10)


def test_a_date_in_the_past_means_now() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=NOW + 10) == 0.0
    assert parse_retry_after(formatdate(NOW - 30, usegmt=True), now=NOW) == 0.0


@pytest.mark.parametrize(
    "value",
    [
        "Wed, 21 Oct 2015 07:28:10",  # IMF form without its zone: any local time
        "Wed, 21 Oct 2015 07:28:10 -0000",  # RFC 5322: "-0000" is an unknown local time
        "Wed, 21 Oct 2015 07:28:10 XYZ",
        "Wed, 99 Oct 2015 07:28:10 GMT",
        "tomorrow",
    ],
)
def test_a_date_without_a_usable_zone_or_garbage_is_ignored(value: str) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_backoff_doubles_is_capped_and_jittered_below_the_step() -> None:
    for attempt, step in ((1, 1.0), (2, 2.0), (3, 4.0), (7, 50.0), (10_000, 50.0)):
        waits = [backoff(attempt, base=1.0, cap=50.0) for _ in range(200)]
        assert all(step * 0.5 <= w <= step for w in waits), (attempt, min(waits), max(waits))
        assert max(waits) - min(waits) > step * 0.2  # jittered, not a constant
    assert backoff(0, base=2.0, cap=10.0, low=1.0) == 2.0  # attempt < 1 counts as the first


def test_backoff_jitter_above_the_step_never_passes_the_cap() -> None:
    assert all(8.0 <= backoff(1, base=10.0, cap=100.0, low=0.8, high=1.2) <= 12.0 for _ in range(100))
    assert all(backoff(5, base=10.0, cap=100.0, low=0.8, high=1.2) <= 100.0 for _ in range(100))


def policy(*, max_attempts: int = 4, backoff_base: float = 1.0, backoff_floor: bool = False) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=max_attempts,
        backoff_base=backoff_base,
        backoff_cap=8.0,
        retry_after_cap=60.0,
        backoff_floor=backoff_floor,
    )


def test_policy_final_answers() -> None:
    p = policy()
    for status in (400, 401, 403, 404, 409, 410, 501):
        assert p.decide(1, status) == Decision(Verdict.FINAL)


def test_policy_transient_answers_are_retried_with_backoff_until_attempts_run_out() -> None:
    p = policy()
    for status in (None, 429, 500, 502, 503, 504):
        first = p.decide(1, status)
        assert first.retry and 0.5 <= first.delay <= 1.0, (status, first)
        third = p.decide(3, status)
        assert third.retry and 2.0 <= third.delay <= 4.0
        assert p.decide(4, status) == Decision(Verdict.EXHAUSTED)


def test_policy_honours_retry_after_and_refuses_a_longer_one_than_its_cap() -> None:
    p = policy()
    assert p.decide(1, 429, 0.35) == Decision(Verdict.RETRY, 0.35 + RETRY_AFTER_MARGIN)
    assert p.decide(2, 503, 30.0) == Decision(Verdict.RETRY, 30.0 + RETRY_AFTER_MARGIN)  # above the cap
    assert p.decide(1, 429, 61.0) == Decision(Verdict.TOO_LONG)
    assert p.decide(4, 429, 61.0) == Decision(Verdict.TOO_LONG)  # checked before the attempt count
    assert p.decide(4, 429, 1.0) == Decision(Verdict.EXHAUSTED)


def test_policy_backoff_floor_applies_to_5xx_only() -> None:
    p = policy(backoff_base=4.0, backoff_floor=True)
    assert p.decide(1, 429, 0.5) == Decision(Verdict.RETRY, 0.5 + RETRY_AFTER_MARGIN)
    floored = p.decide(1, 503, 0.5)
    assert floored.retry and 2.0 <= floored.delay <= 4.0
    assert p.decide(1, 503, 5.0) == Decision(Verdict.RETRY, 5.0 + RETRY_AFTER_MARGIN)


def test_policy_ambiguous_outcomes_of_unrepeatable_requests_are_final() -> None:
    p = policy()
    for status in (None, 500, 502, 503, 504):
        assert p.decide(1, status, repeat_ambiguous=False) == Decision(Verdict.FINAL)
    assert p.decide(1, 429, 0.1, repeat_ambiguous=False).retry  # a 429 was never processed
    assert p.decide(1, 404, repeat_ambiguous=False) == Decision(Verdict.FINAL)


def test_policy_wait_alone_for_failures_judged_elsewhere() -> None:
    p = policy()
    assert p.wait(1, retry_after=2.0) == Decision(Verdict.RETRY, 2.0 + RETRY_AFTER_MARGIN)
    assert p.wait(4) == Decision(Verdict.EXHAUSTED)
    with pytest.raises(ValueError):
        policy(max_attempts=0)
