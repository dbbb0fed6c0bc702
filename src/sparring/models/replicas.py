"""Several servers of one model (replicas) behind one target: who gets the next request, and who is out.

A replica is one base URL. Its state (requests in flight, its rate window,
consecutive failures, whether it is out) is shared by every model in the
process that names it, so two targets on one server cannot overload it
together. A request goes to the usable replica with the fewest requests in
flight; choosing and taking the slot happen with no await in between, so the
bound of a replica holds however many tasks ask at once.

A replica that fails ``eject_after`` times in a row is taken out for
``eject_s`` seconds (only where the target has another replica to send its
work to); back from its cool-down, its next failure takes it out again and its
next success clears it. A 429's ``Retry-After`` pauses the replica that sent it.
When nothing is usable, the request waits for the first of: a slot freed, a
rate window opening, a replica coming back.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

from sparring.errors import ConfigError
from sparring.models.rate_limits import Booking, RateWindow, shared_limit
from sparring.redaction import redact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplicaLimits:
    """What a config declares for each of its replicas; one server has one set, whoever names it."""

    concurrency: int
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    eject_after: int = 3
    eject_s: float = 30.0


class Replica:
    """One server's shared state on one event loop."""

    def __init__(self, url: str, limits: ReplicaLimits) -> None:
        self.url = url
        self.limits = limits
        self.window = RateWindow(shared_limit(limits.requests_per_minute), shared_limit(limits.tokens_per_minute))
        self.in_flight = 0
        self.sent = 0
        self.failures = 0  # consecutive transient failures
        self.ejected_until = 0.0  # out for repeated failures (only targets with another replica honour it)
        self.paused_until = 0.0  # asked to wait by Retry-After (everyone honours it)
        self.n_support: dict[str, bool] = {}  # per API path: does the server return n choices for n?
        self.n_probes: dict[str, asyncio.Future[None]] = {}  # a probe in flight, per API path

    def __repr__(self) -> str:
        return f"Replica({redact(self.url)}, in_flight={self.in_flight})"

    def n_gate(self, path: str) -> bool | asyncio.Future[None] | None:
        """Whether requests with ``n`` to ``path`` get n choices here: True/False when known; a probe in
        flight to wait for; or None, and the caller is now the one probe (check and mark are one step)."""
        known = self.n_support.get(path)
        if known is not None:
            return known
        probe = self.n_probes.get(path)
        if probe is not None:
            return probe
        self.n_probes[path] = asyncio.get_running_loop().create_future()
        return None

    def end_probe(self, path: str, supported: bool | None) -> None:
        """Record what the probe found (None: nothing, e.g. it failed) and let the requests waiting on it go."""
        if supported is not None:
            self.n_support[path] = supported
        probe = self.n_probes.pop(path, None)
        if probe is not None and not probe.done():
            probe.set_result(None)


@dataclass(eq=False)
class Ticket:
    """A taken slot on a replica; give it back exactly once (``ReplicaPool.succeeded/failed/release``)."""

    replica: Replica
    booking: Booking | None
    done: bool = False


@dataclass(eq=False)
class _Waiter:
    future: asyncio.Future[Replica | None]
    usable: frozenset[Replica]  # a freed slot on one of these may let this waiter go


@dataclass(eq=False)
class Dispatcher:
    """The replicas and the waiting requests of one event loop.

    ``clock`` is what rate windows, pauses and cool-downs are measured with; tests
    replace it with a hand-moved clock and call ``poke`` after moving it.
    """

    clock: Callable[[], float] = time.monotonic
    replicas: dict[str, Replica] = field(default_factory=dict)
    waiters: dict[_Waiter, None] = field(default_factory=dict)  # insertion-ordered: first come, first woken

    def replica(self, url: str, limits: ReplicaLimits) -> Replica:
        found = self.replicas.setdefault(url, Replica(url, limits))
        if found.limits != limits:
            for item in fields(ReplicaLimits):
                mine, theirs = getattr(found.limits, item.name), getattr(limits, item.name)
                if mine != theirs:
                    raise ConfigError(f"{item.name}: models on {redact(url)} declare {mine} and {theirs}; "
                                      "one endpoint has one value, so give them the same")
        return found

    def wake_one(self, replica: Replica) -> None:
        """A slot on ``replica`` came free: let the longest-waiting request that could use it try again."""
        for waiter in self.waiters:
            if replica in waiter.usable:
                del self.waiters[waiter]
                if not waiter.future.done():
                    waiter.future.set_result(replica)
                return

    def poke(self) -> None:
        """Every waiting request checks again (after a test moved ``clock``)."""
        waiters, self.waiters = list(self.waiters), {}
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_result(None)


def _load(replica: Replica) -> tuple[float, float]:
    """Busy first by requests in flight, then by requests sent, each per slot (equal bounds: plain counts)."""
    return replica.in_flight / replica.limits.concurrency, replica.sent / replica.limits.concurrency


def _wake(future: asyncio.Future[Replica | None]) -> None:
    if not future.done():
        future.set_result(None)


_DISPATCHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Dispatcher] = weakref.WeakKeyDictionary()


def dispatcher() -> Dispatcher:
    """The running loop's dispatcher (asyncio objects belong to one loop; a dead loop's state goes with it)."""
    loop = asyncio.get_running_loop()
    found = _DISPATCHERS.get(loop)
    if found is None:
        found = _DISPATCHERS[loop] = Dispatcher()
    return found


class ReplicaPool:
    """One model's replicas: takes a slot on the best one, records how the request went."""

    def __init__(self, replicas: Sequence[tuple[str, ReplicaLimits]]) -> None:
        self.replicas = tuple(replicas)
        self.urls = tuple(url for url, _ in self.replicas)
        self._bound: tuple[Dispatcher, tuple[Replica, ...]] | None = None

    def bind(self) -> tuple[Dispatcher, tuple[Replica, ...]]:
        """This pool's replicas on the running loop."""
        current = dispatcher()
        if self._bound is None or self._bound[0] is not current:
            self._bound = current, tuple(current.replica(url, limits) for url, limits in self.replicas)
        return self._bound

    def _out(self, replica: Replica, now: float) -> bool:
        if replica.paused_until > now:
            return True
        return len(self.urls) > 1 and replica.ejected_until > now

    def _back_at(self, replica: Replica) -> float:
        return max(replica.paused_until, replica.ejected_until if len(self.urls) > 1 else 0.0)

    def try_take(self, tokens: int, avoid: Replica | None = None) -> Ticket | tuple[frozenset[Replica], float | None]:
        """Take a slot on the usable replica with the fewest in flight (per slot), or say what to wait for.

        Synchronous: the check and the take cannot be split by another task. Returns the
        ticket, or the replicas whose freed slot would help and the earliest time
        something else may change (a rate window, a replica coming back).
        """
        current, replicas = self.bind()
        now = current.clock()
        healthy = [r for r in replicas if not self._out(r, now)]
        if avoid is not None and any(r is not avoid for r in healthy):
            healthy = [r for r in healthy if r is not avoid]  # a retry goes to another replica if there is one
        else:
            avoid = None
        best: Replica | None = None
        wake_at: float | None = None
        for replica in healthy:
            if replica.in_flight >= replica.limits.concurrency:
                continue  # a freed slot wakes the waiter
            ready = replica.window.ready_at(now, tokens)
            if ready > now:
                wake_at = ready if wake_at is None else min(wake_at, ready)
            elif best is None or _load(replica) < _load(best):
                best = replica
        if best is not None:
            best.in_flight += 1
            best.sent += 1
            return Ticket(best, best.window.book(now, tokens))
        for replica in replicas:  # all out: wait for the first to come back
            if replica is not avoid and self._out(replica, now):
                back = self._back_at(replica)
                wake_at = back if wake_at is None else min(wake_at, back)
        return frozenset(healthy), wake_at

    async def acquire(self, tokens: int, avoid: Replica | None = None) -> Ticket:
        """Wait for a slot (see ``try_take``); ``tokens`` is the request's estimated cost for tokens-per-minute."""
        loop = asyncio.get_running_loop()
        while True:
            taken = self.try_take(tokens, avoid)
            if isinstance(taken, Ticket):
                return taken
            usable, wake_at = taken
            current = self.bind()[0]
            future: asyncio.Future[Replica | None] = loop.create_future()
            waiter = _Waiter(future, usable)
            current.waiters[waiter] = None
            timer = None
            if wake_at is not None:
                delay = max(wake_at - current.clock(), 0.0)
                timer = loop.call_later(delay, _wake, future)
            try:
                await future
            except asyncio.CancelledError:
                freed = future.result() if future.done() and not future.cancelled() else None
                if freed is not None:
                    current.wake_one(freed)  # pass on a freed slot this task will not use
                raise
            finally:
                current.waiters.pop(waiter, None)
                if timer is not None:
                    timer.cancel()

    def _give_back(self, ticket: Ticket) -> None:
        if ticket.done:
            raise RuntimeError("a replica ticket was given back twice")
        ticket.done = True
        ticket.replica.in_flight -= 1
        self.bind()[0].wake_one(ticket.replica)

    def succeeded(self, ticket: Ticket, tokens: int | None) -> None:
        """The replica answered: clear its failures and book what the request really cost, if the reply says."""
        ticket.replica.failures = 0
        if tokens is not None:
            ticket.replica.window.correct(ticket.booking, tokens)
        self._give_back(ticket)

    def failed(self, ticket: Ticket, retry_after: float | None = None) -> None:
        """A transient failure (timeout, network error, 429, 5xx): count it, maybe take the replica out."""
        replica = ticket.replica
        current = self.bind()[0]
        now = current.clock()
        replica.failures += 1
        if retry_after is not None:
            replica.paused_until = max(replica.paused_until, now + retry_after)
        if len(self.urls) > 1 and replica.failures >= replica.limits.eject_after and replica.ejected_until <= now:
            replica.ejected_until = now + replica.limits.eject_s
            replica.failures = replica.limits.eject_after - 1  # back from cool-down, one more failure takes it out
            log.warning("openai: replica %s failed %d times in a row; out for %.0f s",
                        redact(replica.url), replica.limits.eject_after, replica.limits.eject_s)
        self._give_back(ticket)

    def release(self, ticket: Ticket) -> None:
        """Give the slot back saying nothing about the replica's health (a 4xx, a cancelled request)."""
        if not ticket.done:
            self._give_back(ticket)
