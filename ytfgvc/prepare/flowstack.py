"""Flow stacks anchored at kept frames, computed while the video decodes, written as files.

For kept frame ``k`` (1-based, ``img_{k:05d}.jpg``) taken from native frame ``i``, the
stack holds ``L`` fields of consecutive native frames: ``i -> i+1, …, i+L-1 -> i+L``.
Field ``j`` (1..L) of stack ``k`` is file number ``n = (k - 1) * L + j``:
``flow_x_{n:05d}.jpg`` / ``flow_y_{n:05d}.jpg``. So the flow folder always holds exactly
``num_frames * L`` pairs of files and stack ``k`` is files ``(k-1)*L+1 … k*L``.

Near the end of a video a stack may run out of native frames; its missing fields are
copies of its last real field (``padded`` in ``meta.json`` counts them), or zero motion
when the kept frame is the very last native frame. ``meta.json`` lists for each stack the
native index pair (and their times) that every file holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from ytfgvc.layout import DatasetLayout
from ytfgvc.prepare.flow import FlowBackend, encode_flow_files
from ytfgvc.store import Sink


@dataclass
class _Stack:
    frame: int  # 1-based kept frame number
    native: int  # native index of the kept frame
    filled: list[int] = field(default_factory=list)  # fields j (0-based) written from a real pair
    last: tuple[int, bytes, bytes] | None = None  # the latest real field (j, x, y): what padding copies


class FlowStackWriter:
    """Collects grey native frames, runs the backend in batches, writes each field's files into ``sink``.

    Call :meth:`add_stack` when a kept frame is decided, :meth:`add_grey` for each
    decoded native frame while :attr:`need_until` says it is wanted, and :meth:`finish`
    once the video ends.
    """

    def __init__(self, sink: Sink, backend: FlowBackend, stack: int, fmt: str, shape: tuple[int, int]) -> None:
        self.sink, self.backend, self.L, self.fmt, self.shape = sink, backend, stack, fmt, shape
        self.batch = max(1, int(getattr(backend, "batch_size", 1)))
        self.stacks: list[_Stack] = []
        self.need_until = -1  # highest native index still needed
        self.grey: dict[int, np.ndarray] = {}
        self.times: dict[int, Fraction] = {}
        self.slots: dict[int, list[tuple[int, int]]] = {}  # pair start a -> [(stack idx, field j)]
        self.pending: list[int] = []  # pair starts whose two frames are ready
        self.pairs_computed = 0

    def add_stack(self, frame: int, native: int) -> None:
        s = len(self.stacks)
        self.stacks.append(_Stack(frame, native))
        for j in range(self.L):
            self.slots.setdefault(native + j, []).append((s, j))
        self.need_until = max(self.need_until, native + self.L)

    def wants(self, index: int) -> bool:
        return index <= self.need_until and index not in self.grey

    def add_grey(self, index: int, t: Fraction, grey: np.ndarray) -> None:
        self.grey[index], self.times[index] = grey, t
        for a in (index - 1, index):
            if a in self.slots and a not in self.pending and a in self.grey and a + 1 in self.grey:
                self.pending.append(a)
        if len(self.pending) >= self.batch:
            self._compute()

    def _compute(self) -> None:
        if not self.pending:
            return
        todo, self.pending = sorted(self.pending), []
        flows = self.backend.compute(np.stack([self.grey[a] for a in todo]), np.stack([self.grey[a + 1] for a in todo]))
        if flows.shape != (len(todo), *self.grey[todo[0]].shape, 2):
            raise RuntimeError(f"flow backend {self.backend.name!r} returned shape {flows.shape}")
        for a, f in zip(todo, flows, strict=True):
            fx, fy = encode_flow_files(f, self.fmt)
            for s, j in self.slots.pop(a):
                self._write(s, j, fx, fy)
                self._filled(self.stacks[s], j, fx, fy)
        self.pairs_computed += len(todo)
        low = min(self.slots, default=self.need_until + 1)  # frames below every wanted pair are done with
        for i in [i for i in self.grey if i < low]:
            del self.grey[i]

    def _filled(self, st: _Stack, j: int, fx: bytes, fy: bytes) -> None:
        """Field ``j`` of ``st`` is written; its bytes are kept while the stack may still need padding."""
        st.filled.append(j)
        if len(st.filled) == self.L:
            st.last = None  # complete: nothing to pad
        elif st.last is None or j > st.last[0]:
            st.last = (j, fx, fy)

    def _write(self, s: int, j: int, fx: bytes, fy: bytes) -> None:
        x, y = DatasetLayout.flow_names(s * self.L + j + 1, self.fmt)
        self.sink.add(x, fx)
        self.sink.add(y, fy)

    def finish(self) -> None:
        """Compute what is left, then pad the stacks cut short by the end of the video."""
        self._compute()
        zero: tuple[bytes, bytes] | None = None
        for s, st in enumerate(self.stacks):
            real = len(st.filled)
            for j in range(real, self.L):
                if real:
                    self._write(s, j, st.last[1], st.last[2])
                else:
                    zero = zero or encode_flow_files(np.zeros((*self.shape, 2), np.float32), self.fmt)
                    self._write(s, j, *zero)

    def meta(self) -> list[dict[str, Any]]:
        """Per stack: the kept frame, its native index, and the native pair each file holds."""

        out = []
        for s, st in enumerate(self.stacks):
            real = len(st.filled)
            pairs = [[st.native + j, st.native + j + 1] for j in range(real)]
            pairs += [pairs[-1] if pairs else None] * (self.L - real)
            times = [[round(float(self.times[a]), 6) for a in p] if p else None for p in pairs]
            out.append(
                {
                    "frame": st.frame,
                    "native": st.native,
                    "files": [s * self.L + 1, (s + 1) * self.L],
                    "pairs": pairs,
                    "times": times,
                    "padded": self.L - real,
                }
            )
        return out
