"""The driver's side of a Ray run, and what every task needs: the session, a bounded task pool,
whether this node sees ``--root``, and moving files when it does not.

Shared root or not. The driver writes ``<root>/<dataset>/.ytfgvc-shared-<token>`` holding a
random token for the duration of the run. A task that reads that token at the same path
works in ``--root`` directly (temporary names, then a rename, as a local run does);
one that does not works in a scratch folder on its node and returns the finished files
in its result, and the driver writes them under ``--root`` (temporary name, rename). A
network filesystem that shows the marker late only costs bytes sent through the driver,
never a wrong result. ``--ray-shared-root`` makes a node that cannot see it an error
(after :data:`MARKER_WAIT_S`, for attribute caches); ``--no-ray-shared-root`` always
returns files (for a root on the driver's local disk).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

from ytfgvc.distributed import ClusterConfig, require_ray
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout
from ytfgvc.system.fsutil import atomic_path, write_text_atomic

# Retries of a task whose worker process or node died (Ray's ``max_retries``); an exception
# raised by the task itself is a result, not retried.
TASK_RETRIES = 3
# A node that should see a shared root waits this long for the marker (NFS attribute caches).
MARKER_WAIT_S = 30.0


class RaySession:
    """Joins (or starts) a Ray cluster for one run; a context manager.

    A Ray already initialised in this process (a notebook, a test) is used as it is and left
    running; otherwise ``ray.init(address=cfg.ray_address)`` is called and shut down at the end.
    """

    def __init__(self, cfg: ClusterConfig):
        self.cfg = cfg
        self.ray = require_ray()
        self._started = False

    def __enter__(self) -> RaySession:
        ray = self.ray
        if not ray.is_initialized():
            try:
                ray.init(address=self.cfg.ray_address, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = self.cfg.ray_address or os.environ.get("RAY_ADDRESS") or "a local instance"
                raise YtfgvcError(
                    f"cannot join the Ray cluster at {where}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                    "start one with `ray start --head` (then --ray-address auto) or pass --ray-address HOST:PORT",
                ) from None
            self._started = True
        return self

    def __exit__(self, *exc) -> None:
        if self._started:
            self.ray.shutdown()

    def alive_nodes(self) -> list[dict[str, Any]]:
        """``{"id", "host", "cpus", "gpus"}`` of every live node."""
        return [
            {
                "id": n["NodeID"],
                "host": n["NodeManagerAddress"],
                "cpus": n.get("Resources", {}).get("CPU", 0),
                "gpus": n.get("Resources", {}).get("GPU", 0),
            }
            for n in self.ray.nodes()
            if n.get("Alive")
        ]

    def total_cpus(self) -> int:
        return int(sum(n["cpus"] for n in self.alive_nodes()))

    def total_gpus(self) -> int:
        return int(sum(n["gpus"] for n in self.alive_nodes()))

    def serving_host(self) -> str:
        """The address a server on the driver should listen on so every node reaches it.

        Loopback when every node runs on the driver's machine (no port opened to the network).
        """
        here = self.ray.get_runtime_context().get_node_id()
        nodes = self.alive_nodes()
        mine = next((n["host"] for n in nodes if n["id"] == here), None)
        if mine is None or all(n["host"] == mine for n in nodes):
            return "127.0.0.1"
        return mine


# --------------------------------------------------------------------------- shared root


@contextlib.contextmanager
def shared_root_marker(layout: DatasetLayout) -> Iterator[str]:
    """Write this run's marker under ``layout`` (removed at the end); yields its token."""
    token = secrets.token_hex(16)
    path = layout.shared_root_marker(token)
    write_text_atomic(path, token)
    try:
        yield token
    finally:
        path.unlink(missing_ok=True)


def node_sees_root(layout: DatasetLayout, token: str, wait_s: float = 0.0) -> bool:
    """True if this node reads the driver's marker ``token`` under ``layout`` (waiting up to ``wait_s``)."""
    path = layout.shared_root_marker(token)
    deadline = time.monotonic() + wait_s
    while True:
        with contextlib.suppress(OSError):
            if path.read_text() == token:
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def resolve_shared(layout: DatasetLayout, token: str, shared: bool | None, node: str) -> bool:
    """Whether a task on ``node`` works in ``--root`` (True) or in a scratch folder (False).

    Raises:
        YtfgvcError: ``shared`` is True and this node does not see the root.
    """
    if shared is False:
        return False
    if node_sees_root(layout, token, MARKER_WAIT_S if shared else 0.0):
        return True
    if shared:
        raise YtfgvcError(
            f"--ray-shared-root: node {node} does not see {layout.root} (no marker after {MARKER_WAIT_S:g} s); "
            "mount it at the same path on every node, or drop --ray-shared-root to send files through the driver"
        )
    return False


@contextlib.contextmanager
def scratch_root() -> Iterator[Path]:
    """A private folder on this node's disk for a task that does not see ``--root``."""
    folder = Path(tempfile.mkdtemp(prefix="ytfgvc-scratch-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def read_tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``: relative POSIX path -> bytes (what a task returns)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_tree(dest: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (from :func:`read_tree`) as the folder ``dest``: built under a temporary name, then renamed."""
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        for rel, data in files.items():
            p = tmp / rel
            if Path(rel).is_absolute() or ".." in Path(rel).parts or not rel:
                raise ValueError(f"refusing to write {rel!r} outside {dest}")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)


def write_file(dest: Path, data: bytes) -> None:
    """Write one returned file at ``dest`` under a temporary name, then rename (no fsync: as local runs)."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


# --------------------------------------------------------------------------- task pool


class TaskPool:
    """Ray tasks of one remote function, at most ``window`` in flight; results as they finish.

    Ray does the scheduling (and the retries of tasks whose worker died); the window only
    keeps the driver's memory and each ``ray.wait`` bounded, whatever the number of videos.
    Each key has at most one task in flight.
    """

    def __init__(self, remote_fn: Any, window: int):
        self.ray = require_ray()
        self.fn = remote_fn
        self.window = max(1, window)
        self._queue: deque[tuple[Hashable, tuple, dict]] = deque()
        self._inflight: dict[Any, Hashable] = {}
        self._keys: set[Hashable] = set()

    def submit(self, key: Hashable, *args: Any, node_id: str | None = None) -> None:
        """Queue ``fn(*args)`` under ``key``; ``node_id``: prefer that node (falls back to any)."""
        if key in self._keys:
            raise ValueError(f"{key!r} already has a task")
        options: dict[str, Any] = {}
        if node_id is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=True)
        self._keys.add(key)
        self._queue.append((key, args, options))

    def __len__(self) -> int:
        return len(self._keys)

    def _top_up(self) -> None:
        while self._queue and len(self._inflight) < self.window:
            key, args, options = self._queue.popleft()
            fn = self.fn.options(**options) if options else self.fn
            self._inflight[fn.remote(*args)] = key

    def results(
        self, tick: Callable[[], None] | None = None, timeout_s: float = 0.5
    ) -> Iterator[tuple[Hashable, Any, BaseException | None]]:
        """Yield ``(key, value, None)`` or ``(key, None, error)`` as tasks finish, until none is left.

        ``error`` is the exception the task raised, or Ray's error when it could not run it
        (its worker died more than :data:`TASK_RETRIES` times, its node was lost for good).
        ``tick()`` is called at least every ``timeout_s``; :meth:`submit` may be called meanwhile.
        """
        ray = self.ray
        while self._queue or self._inflight:
            self._top_up()
            ready, _ = ray.wait(list(self._inflight), num_returns=1, timeout=timeout_s)
            if ready:  # then everything else already finished, in one call
                ready, _ = ray.wait(list(self._inflight), num_returns=len(self._inflight), timeout=0)
            if tick is not None:
                tick()
            for ref in ready:
                key = self._inflight.pop(ref)
                self._keys.discard(key)
                try:
                    value, error = ray.get(ref), None
                except ray.exceptions.RayTaskError as e:
                    value, error = None, getattr(e, "cause", None) or e
                except ray.exceptions.RayError as e:
                    value, error = None, e
                yield key, value, error

    def cancel(self) -> None:
        """Drop queued tasks and ask running ones to stop (their results are not collected)."""
        self._queue.clear()
        for ref in self._inflight:
            with contextlib.suppress(Exception):
                self.ray.cancel(ref)
        self._inflight.clear()
        self._keys.clear()


def describe_error(error: BaseException) -> str:
    """One line for a task that failed: its exception, without Ray's traceback."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[-1] if text else ''}".strip().rstrip(":")
