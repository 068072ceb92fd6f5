"""The one-file executable's process model, made to look like one process.

A PyInstaller one-file executable is a small bootloader that unpacks the bundle into a
temporary folder and runs Python as its child; it forwards the signals it can catch (SIGTERM,
SIGINT) to that child and exits with the child's status. SIGKILL cannot be caught, so
`kill -9` of the executable's pid would leave the server running as an orphan, still holding
the data folder and the port: not what anyone who killed "qahub" expects. The child therefore
asks the kernel to kill it when its parent dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_bootloader() -> None:
    """In the executable's Python process on Linux: die when the bootloader does."""
    if not getattr(sys, "frozen", False) or not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return  # not fatal: only a SIGKILLed bootloader would leave us behind
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the bootloader died before the request took effect
        os._exit(1)
