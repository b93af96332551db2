"""The one retry policy of every network call: :class:`~synapse_sdk.clients.BackendClient`
requests and :class:`~synapse_sdk.storage.Downloader` transfers.

One set of retryable statuses (:data:`RETRY_STATUSES`), one ``Retry-After`` parser
(:func:`parse_retry_after`) and one backoff (:class:`RetryPolicy`, on tenacity). A call retries
only :class:`Transient` failures; anything else goes straight through. The clock and the sleep
are injectable, so tests check the waits without waiting::

    slept = []
    policy = RetryPolicy(retries=3, backoff=0.5, sleep=slept.append, jitter=lambda: 1.0)
    policy.call(fetch_page)          # fetch_page raises Transient for a 503
    assert slept == [0.5, 1.0]       # it failed twice, then succeeded
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import tenacity

__all__ = ['RETRY_STATUSES', 'RetryPolicy', 'Transient', 'parse_retry_after']

T = TypeVar('T')

#: HTTP statuses worth retrying (rate limited, bad gateway, unavailable, gateway timeout).
#: Every other error status is final.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class Transient(Exception):
    """A failure that retrying may fix.

    ``retry_after`` is the server's hint in seconds, ``status_code`` the HTTP status if any,
    ``payload`` whatever the caller wants back when the retries run out (the last response).
    ``attempts`` is set on the exception that ends the retries.
    """

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = None,
        payload: Any = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.status_code = status_code
        self.payload = payload
        self.attempts = 1


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """``Retry-After`` as seconds from ``now()``: delta-seconds or an HTTP date (RFC 9110).

    ``None`` when absent or unreadable; a date in the past gives ``0.0``.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        import email.utils  # only for an HTTP date

        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, when.timestamp() - now())
    if seconds != seconds or seconds in (float('inf'), float('-inf')):  # NaN, inf
        return None
    return max(0.0, seconds)


@dataclass
class RetryPolicy:
    """How often and how long to retry a :class:`Transient` failure.

    ``retries`` extra attempts after the first; the n-th wait is ``backoff * 2**(n-1)`` capped
    at ``max_backoff``, times a jitter factor in ``[0.5, 1]`` (``jitter()`` returns a number
    in ``[0, 1]``), so parallel retries do not stampede. A server's ``Retry-After`` replaces
    the computed wait, capped at ``max_retry_after``. ``sleep`` does the waiting (tests pass
    ``list.append``); ``None`` means :func:`time.sleep`, or the caller's own sleep (the
    downloader's, which a cancel interrupts).
    """

    retries: int = 4
    backoff: float = 0.25
    max_backoff: float = 8.0
    max_retry_after: float = 60.0
    sleep: Callable[[float], Any] | None = None
    jitter: Callable[[], float] = random.random

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_backoff < 0:
            raise ValueError('retries and delays must not be negative')
        if self.max_retry_after < 0:
            raise ValueError('max_retry_after must not be negative')

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(0.0, retry_after), self.max_retry_after)
        base = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
        return base * (0.5 + min(1.0, max(0.0, self.jitter())) / 2)

    def call(
        self,
        fn: Callable[[], T],
        *,
        on_retry: Callable[[Transient, int, float], None] | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> T:
        """Run ``fn`` until it returns, raises something other than :class:`Transient`, or
        has failed ``retries + 1`` times (then the last :class:`Transient` is raised, with
        ``attempts`` set). ``on_retry(exc, attempt, delay)`` is called before each wait."""
        import tenacity  # imported by the first call: a run that never calls out skips it

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            hint = exc.retry_after if isinstance(exc, Transient) else None
            return self.delay(state.attempt_number, hint)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if on_retry is not None and isinstance(exc, Transient):
                delay = state.next_action.sleep if state.next_action else 0.0
                on_retry(exc, state.attempt_number, delay)

        attempts = 0

        def attempt() -> T:
            nonlocal attempts
            attempts += 1
            try:
                return fn()
            except Transient as exc:
                exc.attempts = attempts
                raise

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.retries + 1),
            wait=wait,
            retry=tenacity.retry_if_exception_type(Transient),
            sleep=self.sleep or sleep or time.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(attempt)
