"""Worker processes that end within a second of the main process, and never write after it.

The main process calls :func:`main_token` and hands the token to its workers; each worker
calls :func:`bind_to_main` first thing (a pool initializer, a DataLoader ``worker_init_fn``).
Then, in the worker:

* a watchdog thread checks every :data:`POLL_S` seconds that the main process is alive
  (its pid and its start time, so a reused pid does not count; a zombie is dead) and ends
  the worker with ``os._exit`` when it is not, even when the main process died by SIGKILL;
* optionally ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, so the kernel kills the worker the
  moment its direct parent dies. The watchdog is needed anyway: the parent of a
  forkserver worker is the forkserver, which lives as long as any worker holds its pipe;
* :func:`ensure_main_alive` raises :class:`MainGone` when the main process is gone; call
  it just before renaming a finished result into place, so nothing appears after the
  main process died (the window left is the rename itself, microseconds).

Linux only for the prctl and ``/proc``; elsewhere only the pid is checked.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

POLL_S = 0.5
PR_SET_PDEATHSIG = 1
EXIT_ORPHANED = 70  # a worker whose main process is gone (never seen by a user: nobody waits for it)

Token = tuple[int, "int | None"]  # (pid, start time in clock ticks since boot, or None where unknown)

_main: Token | None = None


class MainGone(RuntimeError):
    """The main process this worker served is gone: its results must not be written."""


_HAVE_PROC = os.path.exists("/proc/self/stat")


def process_state(pid: int) -> tuple[str, int] | None:
    """``(state letter, start time in clock ticks since boot)`` of ``pid``, or None when there is no such process.

    Without ``/proc`` the state is ``"?"`` and the start time 0 (unknown).
    """
    if not _HAVE_PROC:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?", 0
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except FileNotFoundError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # the name may hold spaces and parentheses
    return fields[0], int(fields[19])


def process_start(pid: int) -> int | None:
    """The start time of ``pid`` (clock ticks since boot), or None when unknown."""
    state = process_state(pid)
    return state[1] if state and state[1] else None


def is_alive(pid: int, start: int | None = None) -> bool:
    """Whether ``pid`` runs and, when ``start`` is given, is the process that started then; zombies are dead."""
    state = process_state(pid)
    if state is None or state[0] in ("Z", "X"):
        return False
    return start is None or not state[1] or state[1] == start


def main_token() -> Token:
    """This process, as :func:`bind_to_main` in a worker will recognise it."""
    pid = os.getpid()
    return pid, process_start(pid)


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when the thread that forked it ends; False elsewhere.

    Only safe where that thread lives as long as its process (a forkserver, a pool's main
    thread): a worker forked from a short-lived thread would be killed with it.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def bind_to_main(token: Token, parent_death_signal: bool = False, poll_s: float = POLL_S) -> None:
    """In a worker: end this process when the main process ``token`` names is gone (see the module docstring)."""
    global _main
    _main = token
    if parent_death_signal:
        set_parent_death_signal()
    if not is_alive(*token):  # it died before the line above took effect
        os._exit(EXIT_ORPHANED)
    threading.Thread(target=_watch, args=(token, poll_s), name="ytfgvc-lifeline", daemon=True).start()


def _watch(token: Token, poll_s: float) -> None:
    while is_alive(*token):
        time.sleep(poll_s)
    os._exit(EXIT_ORPHANED)


def main_alive() -> bool:
    """Whether the main process this worker was bound to still runs (True where it was never bound)."""
    return _main is None or is_alive(*_main)


def ensure_main_alive() -> None:
    """Raise :class:`MainGone` when the main process is gone (call it before renaming a result into place)."""
    if not main_alive():
        raise MainGone(f"the main process {_main[0]} is gone: not writing its results")
