"""Background work as named in-process jobs (STYLE.md habit 8): each runs on its interval,
logs what it did, and survives its own failures: an exception is logged and the job tries
again next time. Nothing here can crash the server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("qahub.jobs")


@dataclass
class Job:
    name: str
    interval_s: float
    run: Callable[[], Awaitable[object]]
    runs: int = 0
    failures: int = 0
    last_error: str | None = None
    last_duration_s: float = 0.0
    _task: asyncio.Task | None = field(default=None, repr=False)


class Scheduler:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}

    def add(self, name: str, interval_s: float, run: Callable[[], Awaitable[object]]) -> None:
        if interval_s <= 0:
            log.info("job %s is disabled", name)
            return
        self.jobs[name] = Job(name, interval_s, run)

    def start(self) -> None:
        for job in self.jobs.values():
            job._task = asyncio.create_task(self._loop(job), name=f"job:{job.name}")

    async def run_once(self, name: str) -> object:
        return await self._tick(self.jobs[name])

    async def _tick(self, job: Job) -> object:
        started = time.perf_counter()
        try:
            outcome = await job.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a job must never take the server down
            job.failures += 1
            job.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("job %s failed (will retry in %ss)", job.name, job.interval_s)
            return None
        finally:
            job.runs += 1
            job.last_duration_s = time.perf_counter() - started
        job.last_error = None
        if outcome:
            log.info("job %s: %s", job.name, outcome)
        return outcome

    async def _loop(self, job: Job) -> None:
        while True:
            await asyncio.sleep(job.interval_s)
            await self._tick(job)

    async def stop(self) -> None:
        tasks = [j._task for j in self.jobs.values() if j._task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
