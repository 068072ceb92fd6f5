"""A progress line for long command-line work (exports): redrawn on a terminal at most ten
times a second; on a CI log (not a TTY) silent until the one final line, so logs stay short."""

from __future__ import annotations

import time
from typing import TextIO


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class Progress:
    def __init__(self, stream: TextIO, label: str, unit: str, width: int = 30) -> None:
        self.stream, self.label, self.unit, self.width = stream, label, unit, width
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self._drawn_at = 0.0
        self._drawn = False

    def update(self, done: int, total: int | None, received: int) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if now - self._drawn_at < 0.1:
            return
        self._drawn_at = now
        if total:
            filled = min(self.width, self.width * done // total)
            bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {min(done, total)}/{total} {self.unit}"
        else:
            bar = f"{done} {self.unit}"
        self.stream.write(f"\r\033[K{self.label} {bar}, {human_bytes(received)}")
        self.stream.flush()
        self._drawn = True

    def finish(self, line: str) -> None:
        seconds = time.monotonic() - self.started
        self.stream.write(("\r\033[K" if self._drawn else "") + f"qahub: {line} in {seconds:.1f}s\n")
        self.stream.flush()

    def abandon(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
