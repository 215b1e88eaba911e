"""How fast one IP asks: :class:`Pacer` (request spacing), :class:`Breaker` (stop on refusals),
and :class:`NodePacer`, both of them for one node of a Ray cluster.

A local run has one IP, so one :class:`Pacer` and one :class:`Breaker` for all its threads.
On a cluster each node has its own IP and its own limits: one :class:`NodePacer` actor per
node (pinned to it) gives that node's tasks at most ``--jobs`` requests at a time, starts
spaced by ``--sleep``, and a breaker of its own: a node that YouTube refuses stops asking,
the others go on.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from typing import Any

# How often a task waiting for a free slot on its node looks again.
SLOT_POLL_S = 0.05


class Pacer:
    """Spaces request starts across all threads by a random wait in ``[lo, hi]`` seconds."""

    def __init__(self, lo: float, hi: float, stop: threading.Event, seed: int | None = None):
        self.lo, self.hi, self.stop = lo, hi, stop
        self._next = 0.0
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def wait(self) -> bool:
        """Block until this thread may send its request; False if the run is stopping."""
        if self.hi <= 0:
            return not self.stop.is_set()
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._rng.uniform(self.lo, self.hi)
        return not self.stop.wait(start - now) if start > now else not self.stop.is_set()


class Breaker:
    """Stops the run after ``limit`` rate-limit signals in a row (HTTP 429, "try again later", bot
    checks), or after ``NETWORK_FACTOR * limit`` network errors in a row (the network is down:
    going on would only burn retries)."""

    NETWORK_FACTOR = 2

    def __init__(self, limit: int, stop: threading.Event):
        self.limit, self.stop = limit, stop
        self.streak = 0
        self.network_streak = 0
        self.tripped: str | None = None  # "rate_limited" or "network"
        self.last_reason: str | None = None
        self._lock = threading.Lock()

    def observe(self, status: str, reason: str | None) -> None:
        with self._lock:
            limited = status == "rate_limited" or reason == "bot check"
            self.streak = self.streak + 1 if limited else 0
            self.network_streak = self.network_streak + 1 if status == "network_error" else 0
            if limited or status == "network_error":
                self.last_reason = reason
            if self.tripped:
                return
            if self.streak >= self.limit:
                self.tripped = "rate_limited"
            elif self.network_streak >= self.NETWORK_FACTOR * self.limit:
                self.tripped = "network"
            if self.tripped:
                self.stop.set()


class NodePacer:
    """One node's request slots, spacing and breaker; the body of a Ray actor (see :mod:`ytfgvc.download.remote`).

    A slot held by a worker process that died (a killed task) is taken back: the actor runs on
    the same node, so it can tell whether the holder's process still exists.
    """

    def __init__(self, jobs: int, lo: float, hi: float, breaker_limit: int, seed: int | None = None):
        self.jobs, self.lo, self.hi = jobs, lo, hi
        self.breaker = Breaker(breaker_limit, threading.Event())
        self._rng = random.Random(seed)
        self._next = 0.0
        self._slots: dict[int, int] = {}  # slot -> pid of the worker holding it
        self._lanes: dict[int, int] = {}  # slot -> its lane, 0..jobs-1 (which proxy it uses)
        self._issued = 0
        self.max_held = 0  # most slots ever held at once (what the tests check)

    def _reap(self) -> None:
        for slot, pid in list(self._slots.items()):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                del self._slots[slot]
                self._lanes.pop(slot, None)
            except PermissionError:
                pass

    async def acquire(self, pid: int) -> int | None:
        """A slot for worker ``pid``, once one is free and the pause since the last start is over.

        Returns None, holding nothing, when this node's breaker has tripped.
        """
        while not self.breaker.tripped and len(self._slots) >= self.jobs:
            self._reap()
            if len(self._slots) >= self.jobs:
                await asyncio.sleep(SLOT_POLL_S)
        if self.breaker.tripped:
            return None
        self._issued += 1
        slot = self._issued
        self._slots[slot] = pid
        self._lanes[slot] = min(set(range(self.jobs)) - set(self._lanes.values()))
        self.max_held = max(self.max_held, len(self._slots))
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + self._rng.uniform(self.lo, self.hi)
        if start > now:
            await asyncio.sleep(start - now)
        if self.breaker.tripped:
            self.release(slot)
            return None
        return slot

    def lane(self, slot: int) -> int:
        """The lane (0..jobs-1) of a held slot: no two slots held at once share one."""
        return self._lanes.get(slot, 0)

    def release(self, slot: int) -> None:
        """Give ``slot`` back (a slot already given back is ignored)."""
        self._slots.pop(slot, None)
        self._lanes.pop(slot, None)

    def observe(self, status: str, reason: str | None) -> None:
        """One attempt's result, for this node's breaker."""
        self.breaker.observe(status, reason)

    def state(self) -> dict[str, Any]:
        b = self.breaker
        return {
            "tripped": b.tripped,
            "streak": b.streak,
            "network_streak": b.network_streak,
            "last_reason": b.last_reason,
            "held": len(self._slots),
            "max_held": self.max_held,
        }
