"""The server's maintenance tasks: background loops run in-process (STYLE.md habit 8), each
named, on its interval, logging what it did, and surviving its own failures: an exception is
logged and the task tries again next time. Nothing here can crash the server.

"Task" here never means an agent job (core/jobs.py: work an agent claims). The logger keeps
its name `qahub.jobs` so that operators' log filters and collectors keep matching.

Several nodes (`qahub serve` processes on one PostgreSQL database) each run every task. A task
registered with `coordinated=True` runs on one node per round: before a due run the node claims
the task's lease (one write, db/task_leases.py; writes are serialized across nodes, so the claim
is atomic) and a node that does not get it skips the round. The lease outlives the run: it is
kept alive while the run lasts, and at its end it is renewed until just after the holder's next
round, so that the holder keeps the task and another node takes it over only once the holder
stopped (its leases are released at a clean stop) or died (its lease runs out). Tasks whose
work is claimed row by row in the database, or that are one idempotent write, need no lease;
each registration says which it is and why.

This module knows nothing of the database: the leases come in as an object with three awaitable
methods (`Leases` below), db/task_leases.py's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger("qahub.jobs")

# A coordinated run's lease lasts this long from its claim and from each renewal while it runs
# (every third of it), so that a node that dies mid-run hands its task over within a minute.
RUN_LEASE_S = 60.0
# After a run the lease lasts one interval plus this margin (at most), long enough for the holder's
# next round to find its own lease still there whatever its timer's jitter.
ROUND_MARGIN_S = 30.0


class Leases(Protocol):
    """Task leases shared by the nodes (db/task_leases.py)."""

    holder: str

    async def claim(self, name: str, ttl_s: float) -> str | None:
        """Take or keep `name`'s lease for `ttl_s`; None when taken, else the node holding it."""

    async def renew(self, name: str, ttl_s: float) -> bool:
        """Move the lease's end `ttl_s` ahead; False when this node no longer holds it."""

    async def release(self, names: list[str]) -> None:
        """End this node's leases of `names` now, so another node may take them at once."""


@dataclass
class Task:
    name: str
    interval_s: float
    run: Callable[[], Awaitable[object]]
    coordinated: bool = False  # runs on one node per round (the module's docstring)
    runs: int = 0
    skipped: int = 0  # rounds another node held the lease for
    failures: int = 0
    last_error: str | None = None
    last_duration_s: float = 0.0
    _loop: asyncio.Task | None = field(default=None, repr=False)


class TaskScheduler:
    def __init__(self, leases: Leases | None = None) -> None:
        self.tasks: dict[str, Task] = {}
        # Without leases (a scheduler of its own in a test) every task runs on every tick.
        self.leases = leases
        self._held: set[str] = set()  # names whose lease this node may still hold

    def add(self, name: str, interval_s: float, run: Callable[[], Awaitable[object]], *, coordinated: bool) -> None:
        """Register a task. `coordinated`: whether its rounds need a lease so that only one node
        runs each (every call site says why, or why not)."""
        if interval_s <= 0:
            log.info("maintenance task %s is disabled", name)
            return
        self.tasks[name] = Task(name, interval_s, run, coordinated)

    def start(self) -> None:
        for task in self.tasks.values():
            task._loop = asyncio.create_task(self._repeat(task), name=f"maintenance:{task.name}")

    async def run_once(self, name: str) -> object:
        return await self._tick(self.tasks[name])

    async def _tick(self, task: Task) -> object:
        if task.coordinated and self.leases is not None:
            try:
                holder = await self.leases.claim(task.name, RUN_LEASE_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - no lease, no run: try again next round
                task.failures += 1
                task.last_error = f"lease: {type(exc).__name__}: {exc}"
                log.exception("maintenance task %s: could not claim its lease (will retry in %ss)",
                              task.name, task.interval_s)
                return None
            if holder is not None:
                task.skipped += 1
                log.debug("maintenance task %s: skipped, node %s holds it", task.name, holder)
                return None
            self._held.add(task.name)
            keeper = asyncio.create_task(self._keep_lease(task), name=f"lease:{task.name}")
            try:
                return await self._run(task)
            finally:
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)
                # Reached after a run (not when stopping: a cancelled run skips this, stop() releases).
                await self._end_round(task)
        return await self._run(task)

    async def _run(self, task: Task) -> object:
        started = time.perf_counter()
        try:
            outcome = await task.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a maintenance task must never take the server down
            task.failures += 1
            task.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("maintenance task %s failed (will retry in %ss)", task.name, task.interval_s)
            return None
        finally:
            task.runs += 1
            task.last_duration_s = time.perf_counter() - started
        task.last_error = None
        if outcome:
            log.info("maintenance task %s: %s", task.name, outcome)
        return outcome

    async def _keep_lease(self, task: Task) -> None:
        """While a coordinated run lasts, renew its lease every third of its length."""
        while True:
            await asyncio.sleep(RUN_LEASE_S / 3)
            try:
                if not await self.leases.renew(task.name, RUN_LEASE_S):
                    log.warning("maintenance task %s: another node took its lease during a run", task.name)
                    return
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the run goes on; the next renewal may succeed
                log.exception("maintenance task %s: could not renew its lease", task.name)

    async def _end_round(self, task: Task) -> None:
        """The run is over: keep the lease until just after this node's next round."""
        if asyncio.current_task().cancelling():
            return  # stopping: stop() releases the lease
        try:
            await self.leases.renew(task.name, task.interval_s + min(task.interval_s / 2, ROUND_MARGIN_S))
        except Exception:  # noqa: BLE001 - the run lease then runs out on its own
            log.exception("maintenance task %s: could not renew its lease after a run", task.name)

    async def _repeat(self, task: Task) -> None:
        while True:
            await asyncio.sleep(task.interval_s)
            await self._tick(task)

    async def stop(self) -> None:
        loops = [t._loop for t in self.tasks.values() if t._loop is not None]
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        if self.leases is not None and self._held:
            # Hand the coordinated tasks over now rather than when their leases run out.
            try:
                await self.leases.release(sorted(self._held))
            except Exception:  # noqa: BLE001 - they run out on their own
                log.exception("could not release the maintenance tasks' leases")
            self._held.clear()
