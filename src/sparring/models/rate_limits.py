"""Requests-per-minute and tokens-per-minute limits of one server, as a sliding one-minute window.

Hosted APIs and shared GPU servers answer 429 once a client goes over its
quota; staying under it on our side keeps retries (and their backoff) for real
failures. A request's token cost is not known until the reply's ``usage``
arrives, so it is booked at an estimate when it is sent and corrected when the
reply says what it really cost.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

WINDOW_S = 60.0
_share = 1.0  # the fraction of every server's limits this process may use


def set_process_share(fraction: float) -> None:
    """Where several processes send to one server (the Ray executor's workers), each keeps this share of
    its declared limits, so together they stay under them; 1.0 (one process) is the default."""
    global _share
    if not 0 < fraction <= 1:
        raise ValueError(f"a process's share of a server's limits must be in (0, 1], got {fraction}")
    _share = fraction


def process_share() -> float:
    return _share


def shared_limit(limit: int | None) -> int | None:
    """This process's part of a declared per-minute limit: at least 1, so every worker can make progress."""
    return None if limit is None else max(1, math.floor(limit * _share))


@dataclass(eq=False)
class Booking:
    """One admitted request: when it was sent and the tokens it counts for (an estimate until corrected)."""

    at: float
    tokens: int
    live: bool = True  # still inside the window


class RateWindow:
    """What one server was sent in the last minute, and whether one more request fits.

    ``admits`` and ``book`` are synchronous on purpose: a caller checks and books
    with no await in between, so two tasks can never both take the last unit.
    """

    def __init__(self, requests_per_minute: int | None, tokens_per_minute: int | None,
                 window_s: float = WINDOW_S) -> None:
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.window_s = window_s
        self._bookings: deque[Booking] = deque()
        self._tokens = 0

    @property
    def limited(self) -> bool:
        return self.requests_per_minute is not None or self.tokens_per_minute is not None

    def _expire(self, now: float) -> None:
        while self._bookings and self._bookings[0].at <= now - self.window_s:
            gone = self._bookings.popleft()
            gone.live = False
            self._tokens -= gone.tokens

    def ready_at(self, now: float, tokens: int) -> float:
        """The earliest time (``now`` if at once) a request costing ``tokens`` fits in the window.

        A request larger than the whole token budget fits once the window is empty,
        so an oversized prompt is slowed down, never stuck forever.
        """
        if not self.limited:
            return now
        self._expire(now)
        ready = now
        if self.requests_per_minute is not None and len(self._bookings) >= self.requests_per_minute:
            oldest_needed = self._bookings[len(self._bookings) - self.requests_per_minute]
            ready = max(ready, oldest_needed.at + self.window_s)
        if self.tokens_per_minute is not None and self._bookings:
            excess = self._tokens + tokens - self.tokens_per_minute
            for booking in self._bookings:  # the oldest bookings leave the window first
                if excess <= 0:
                    break
                excess -= booking.tokens
                ready = max(ready, booking.at + self.window_s)
        return ready

    def book(self, now: float, tokens: int) -> Booking | None:
        """Count a request sent at ``now``; the booking is what ``correct`` later adjusts."""
        if not self.limited:
            return None
        booking = Booking(now, max(tokens, 0))
        self._bookings.append(booking)
        self._tokens += booking.tokens
        return booking

    def correct(self, booking: Booking | None, tokens: int) -> None:
        """Replace an estimate with what the reply's ``usage`` says the request cost."""
        if booking is None:
            return
        tokens = max(tokens, 0)
        if booking.live:  # an expired booking no longer counts either way
            self._tokens += tokens - booking.tokens
        booking.tokens = tokens

    def counts(self, now: float) -> tuple[int, int]:
        """Requests and tokens in the window ending at ``now`` (for tests and logs)."""
        self._expire(now)
        return len(self._bookings), self._tokens
