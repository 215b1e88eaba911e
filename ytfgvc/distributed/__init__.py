"""Running a stage's per-video work on a Ray cluster (``--executor ray``).

The model is the same for every stage:

* each video is one Ray task, a function of ``(spec, video)`` that returns a result
  record; Ray schedules the tasks and retries those whose worker or node died;
* the **driver** (the process running ``ytfgvc``) alone writes the records
  (``ledger.sqlite``, ``manifest.json``, ``lists/``) from the results as they arrive, one
  record per video id, so the records stay one consistent file and a killed driver
  resumes from them exactly like a local run;
* files go straight to ``--root`` when every node sees it at the same path (a network
  filesystem); otherwise a task works in a scratch folder on its node and returns the
  files, which the driver writes (see :mod:`ytfgvc.distributed.cluster`).

Ray is an optional extra (``pip install 'ytfgvc[ray]'``); nothing here imports it until a
run asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ytfgvc.config import ConfigBase
from ytfgvc.errors import YtfgvcError

EXECUTORS = ("local", "ray")
INSTALL_HINT = "pip install 'ytfgvc[ray]'"


def require_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise YtfgvcError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


@dataclass
class ClusterConfig(ConfigBase):
    """Where a stage's per-video work runs (``--executor``, ``--ray-address``, ``--ray-shared-root``).

    Attributes:
        executor: ``local`` (threads and processes on this machine) or ``ray`` (tasks on a cluster).
        ray_address: the cluster to join: ``auto`` (the one ``ray start`` runs on this machine),
            ``HOST:PORT``, or None (``$RAY_ADDRESS`` if set, else a Ray instance started for the run).
        shared_root: whether every node sees ``--root`` at the same path; None detects it
            per task (a marker file the driver writes).
    """

    executor: str = "local"
    ray_address: str | None = None
    shared_root: bool | None = None

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise YtfgvcError(f"--executor {self.executor!r} is not one of {', '.join(EXECUTORS)}")
        if self.executor != "ray" and (self.ray_address is not None or self.shared_root is not None):
            raise YtfgvcError("--ray-address and --ray-shared-root go with --executor ray", "add --executor ray")

    @property
    def is_ray(self) -> bool:
        return self.executor == "ray"

    def flags(self) -> list[str]:
        """The command-line flags that give this config (for resume commands)."""
        if not self.is_ray:
            return []
        out = ["--executor", "ray"]
        if self.ray_address:
            out += ["--ray-address", self.ray_address]
        if self.shared_root is not None:
            out.append("--ray-shared-root" if self.shared_root else "--no-ray-shared-root")
        return out


__all__ = ["EXECUTORS", "INSTALL_HINT", "ClusterConfig", "require_ray"]
