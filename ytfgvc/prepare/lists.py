"""Rawframe lists: ``lists/train.txt`` and ``lists/test.txt`` for the prepared videos.

Each line is MMAction2's rawframe format, relative to the dataset folder::

    frames/<youtube_id> <num_frames> <label_id>

in the order of the imported official list, with the official label ids, and only for
videos whose ``frames/<id>/`` is complete. Train on them as they are:

* MMAction2: ``RawframeDataset(ann_file='<root>/<dataset>/lists/train.txt',
  data_prefix=dict(img='<root>/<dataset>'), filename_tmpl='img_{:05d}.jpg', start_index=1)``;
* the original TSN code (``tsn-pytorch``'s ``TSNDataSet``): ``image_tmpl='img_{:05d}.jpg'``;
  it opens ``<path>/img_<i>.jpg`` for ``i`` in ``1 … num_frames`` with ``<path>`` as
  written, so run it from ``<root>/<dataset>`` (or prefix the paths).

Beside them, ``lists/missing.txt`` has one line ``<id> <split> <reason>`` per listed video
that has no frames, and ``lists/meta.json`` (schema ``ytfgvc-lists-1``) the counts, the
card's Table 2 numbers, the manifest hash and the annotations hash the lists come from.
Where flow was prepared, ``lists/flow_train.txt`` and ``lists/flow_test.txt`` list the
videos with flow, ``flow/<id> <stacks> <label_id>`` (one stack per kept frame): what
MMAction2 trains flow on with :class:`ytfgvc.prepare.mmaction.FlowStackFields`.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from typing import Any

from ytfgvc import __version__
from ytfgvc.datasets import Dataset
from ytfgvc.layout import SPLITS, DatasetLayout
from ytfgvc.snapshot import manifest_hash
from ytfgvc.store import read_meta
from ytfgvc.system.fsutil import write_json_atomic, write_text_atomic

LISTS_SCHEMA = "ytfgvc-lists-1"


@dataclass
class ListsResult:
    """Counts per split: ``listed`` (official), ``written`` (prepared), ``paper`` (Table 2)."""

    dataset: str
    listed: dict[str, int]
    written: dict[str, int]
    paper: dict[str, int | None]
    manifest: str | None
    missing: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        parts = []
        for s in SPLITS:
            paper = f"{self.paper[s]:,}" if self.paper[s] is not None else "n/a"
            parts.append(f"{s} {self.written[s]:,} of {self.listed[s]:,} listed (Table 2: {paper})")
        made_from = f"manifest {self.manifest[:12]}" if self.manifest else "no manifest (videos not from `download`)"
        return f"lists: {'; '.join(parts)}; from {made_from}"


def read_frames_meta(layout: DatasetLayout, video_id: str) -> dict[str, Any] | None:
    """The ``meta.json`` of a video's complete frames, in either store (:mod:`ytfgvc.store`), or None."""
    return read_meta(layout, "frames", video_id)


_NOW = object()


def write_lists(ds: Dataset, reasons: dict[str, str] | None = None, manifest: Any = _NOW) -> ListsResult:
    """Write the rawframe lists of dataset ``ds`` for what is prepared now; ``reasons`` explain missing ids.

    ``manifest`` is the hash of the snapshot the frames were made from (``prepare`` passes
    the one it read its ids with); by default, that of the snapshot on disk now.
    """
    card, layout, official = ds.card, ds.layout, ds.official()
    reasons = reasons or {}
    listed, written, missing = {}, {}, {}
    missing_lines = []
    flow_lines: dict[str, list[str]] = {}
    for split in SPLITS:
        lines, flow_lines[split] = [], []
        for video_id, label in official.split(split):
            meta = read_frames_meta(layout, video_id)
            if meta and meta.get("num_frames", 0) > 0:
                lines.append(f"{layout.list_entry_dir(video_id)} {meta['num_frames']} {label}\n")
                flow = read_meta(layout, "flow", video_id)
                if flow and flow.get("num_stacks") == meta["num_frames"]:
                    flow_lines[split].append(f"{layout.flow_list_entry_dir(video_id)} {flow['num_stacks']} {label}\n")
            else:
                missing_lines.append(f"{video_id} {split} {reasons.get(video_id, 'not prepared')}\n")
        write_text_atomic(layout.list_path(split), "".join(lines))
        listed[split], written[split] = len(official.split(split)), len(lines)
        missing[split] = listed[split] - written[split]
    write_text_atomic(layout.missing_list_path, "".join(missing_lines))
    if any(flow_lines.values()):
        for split, lines in flow_lines.items():
            write_text_atomic(layout.flow_list_path(split), "".join(lines))
    result = ListsResult(
        dataset=layout.dataset,
        listed=listed,
        written=written,
        paper={"train": card.split_sizes.train, "test": card.split_sizes.test},
        manifest=manifest_hash(layout) if manifest is _NOW else manifest,
        missing=missing,
    )
    record = {
        "schema": LISTS_SCHEMA,
        **result.to_dict(),
        "annotations": ds.annotations_hash,
        "format": "frames/<id> <num_frames> <label_id>",
        "filename_tmpl": "img_{:05d}.jpg",
        "start_index": 1,
        "flow": {k: len(v) for k, v in flow_lines.items()} if any(flow_lines.values()) else None,
        "ytfgvc": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json_atomic(layout.lists_meta_path, record)
    return result
