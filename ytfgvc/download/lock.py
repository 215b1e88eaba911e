"""One ``download`` (or ``--merge``) per dataset at a time: they are the ledger's only writers.

``prepare`` may run beside a download: it writes other files (``frames/``, ``flow/``,
``lists/``) and reads the ledger once, in one transaction, for the videos it frames and
the snapshot hash its lists carry (:func:`ytfgvc.snapshot.snapshot`), so it names exactly
what it framed whatever the download adds meanwhile.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from ytfgvc.layout import DatasetLayout
from ytfgvc.system.locks import Lock, exclusive


@contextlib.contextmanager
def one_writer(layout: DatasetLayout, log: Callable[[str], None] | None = None) -> Iterator[Lock]:
    """Hold the dataset's download lock for the block; a second writer is refused naming the first."""
    what = f"`ytfgvc download {layout.dataset}` on {layout.base}"
    with exclusive(layout.download_lock_path, what) as lock:
        if lock.took_over is not None and log is not None:
            log(f"note: took over {lock.path} from a process that is gone ({lock.took_over.describe()})")
        yield lock
