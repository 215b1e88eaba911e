"""SIGINT and SIGTERM stop a command the same way; its exit status says which.

Under :func:`sigterm_as_interrupt`, SIGTERM (``kill``, Slurm's ``scancel``, Kubernetes)
raises :class:`Terminated`, a :class:`KeyboardInterrupt`, in the main thread, so every
stage's Ctrl-C path (stop asking for work, record what finished, write the summary) runs
for both. The command then exits with :func:`exit_status`: 130 after SIGINT and 143
after SIGTERM, 128 + the signal's number, as shells report a process the signal killed.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

EXIT_SIGINT = 128 + signal.SIGINT  # 130
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as an interrupt."""


def _raise_terminated(signum: int, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """For the block, SIGTERM raises :class:`Terminated` in the main thread (elsewhere: nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def signal_name(exc: BaseException) -> str:
    """``"SIGTERM"`` for :class:`Terminated`, ``"SIGINT"`` for any other interrupt."""
    return "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"


def exit_status(exc: BaseException) -> int:
    """143 after SIGTERM, 130 after SIGINT."""
    return EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT
