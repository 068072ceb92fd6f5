"""The server's maintenance tasks: background loops run in-process (STYLE.md habit 8), each
named, on its interval, logging what it did, and surviving its own failures: an exception is
logged and the task tries again next time. Nothing here can crash the server.

"Task" here never means an agent job (core/jobs.py: work an agent claims). The logger keeps
its name `qahub.jobs` so that operators' log filters and collectors keep matching.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("qahub.jobs")


@dataclass
class Task:
    name: str
    interval_s: float
    run: Callable[[], Awaitable[object]]
    runs: int = 0
    failures: int = 0
    last_error: str | None = None
    last_duration_s: float = 0.0
    _loop: asyncio.Task | None = field(default=None, repr=False)


class TaskScheduler:
    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}

    def add(self, name: str, interval_s: float, run: Callable[[], Awaitable[object]]) -> None:
        if interval_s <= 0:
            log.info("maintenance task %s is disabled", name)
            return
        self.tasks[name] = Task(name, interval_s, run)

    def start(self) -> None:
        for task in self.tasks.values():
            task._loop = asyncio.create_task(self._repeat(task), name=f"maintenance:{task.name}")

    async def run_once(self, name: str) -> object:
        return await self._tick(self.tasks[name])

    async def _tick(self, task: Task) -> object:
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

    async def _repeat(self, task: Task) -> None:
        while True:
            await asyncio.sleep(task.interval_s)
            await self._tick(task)

    async def stop(self) -> None:
        loops = [t._loop for t in self.tasks.values() if t._loop is not None]
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
