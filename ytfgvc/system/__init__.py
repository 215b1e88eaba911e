"""How ytfgvc lives with the operating system: surviving kills, collisions and full disks.

* :mod:`.fsutil` — atomic writes: nothing half-written is ever taken for finished;
* :mod:`.locks` — one process at a time per dataset stage or run folder, naming the holder;
* :mod:`.lifeline` — worker processes that end with their main process, however it ends;
* :mod:`.interrupts` — SIGINT and SIGTERM stop a run cleanly, with its summary;
* :mod:`.fserrors` — a full disk or a locked database as one line that says what to do.
"""
