"""``ytfgvc download DATASET --merge LEDGER...``: combine the ledgers of shards into this root.

Each input is a ``ledger.sqlite`` file or a folder holding one (a shard's ``--root``, or
its ``<root>/<dataset>/``). For every id the better record wins (``ok``, then other
permanent outcomes, then the most recent), and census rows are added (one per id and
census date; an answer wins over ``unknown``). When an input's winning obtained video sits
beside its ledger (``videos/<id>.mp4``) and this root lacks it, it is copied in (hard
link when on the same filesystem) after its sha256 is checked against the ledger. The
manifest is then rewritten from the merged ledger, so it lists exactly what this root holds.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ytfgvc.datasets import Dataset
from ytfgvc.download.health import write_health
from ytfgvc.download.ledger import Ledger, VideoRecord, merge_records, utc_now
from ytfgvc.download.lock import one_writer
from ytfgvc.download.manifest import write_manifest
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout, is_valid_video_id
from ytfgvc.system.fsutil import atomic_path, sha256_file


@dataclass
class MergeResult:
    dataset: str
    inputs: list[str]
    records: int
    counts: dict[str, int]
    copied: int
    missing_files: int  # ok in the merged ledger, no file here nor beside its ledger
    rejected: list[str] = field(default_factory=list)  # files whose sha256 did not match
    manifest_hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self, root: Path) -> str:
        """The summary for people (what ``ytfgvc download --merge`` prints), with what to do about problems."""
        from ytfgvc.download.runner import counts_text

        text = (
            f"{self.dataset}: merged {len(self.inputs)} ledger(s) into {root}: {self.records} videos "
            f"({counts_text(self.counts)}); {self.copied} video files copied in\nmanifest {self.manifest_hash}"
        )
        if self.missing_files:
            text += (
                f"\nwarning: {self.missing_files} ok videos have no file here nor beside their ledger; copy the "
                f"shards' videos/ folders into {root}/{self.dataset}/videos/ and merge again"
            )
        if self.rejected:
            text += f"\nwarning: {len(self.rejected)} files did not match their recorded sha256 and were not copied"
        return text


def find_ledger(path: Path, dataset: str) -> Path:
    """The ledger file an input names (a file, a dataset folder or a root)."""
    path = Path(path)
    for candidate in (path, path / "ledger.sqlite", path / dataset / "ledger.sqlite"):
        if candidate.is_file():
            return candidate
    raise YtfgvcError(f"--merge {path}: no ledger.sqlite there", f"pass ledger files or shard roots of {dataset!r}")


def _link_or_copy(src: Path, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def merge(root: Path, dataset: str, inputs: list[Path]) -> MergeResult:
    """Merge the ledgers ``inputs`` into ``root``'s ledger, bring their videos, rewrite the manifest."""
    if not inputs:
        raise YtfgvcError("--merge needs at least one ledger", f"e.g. ytfgvc download {dataset} --merge shard-*/")
    ds = Dataset.open(root, dataset)
    layout = ds.layout
    own = layout.ledger_path.resolve()
    paths = [p for p in (find_ledger(i, dataset).resolve() for i in inputs) if p != own]
    with one_writer(layout):
        with Ledger(layout.ledger_path, dataset) as target:
            merged = target.records()
            origin: dict[str, list[Path]] = {}  # id -> videos/ folders of inputs that have it ok
            checks = []
            for path in paths:
                with Ledger(path, dataset, readonly=True) as ledger:
                    checks += [c for c in ledger.checks() if is_valid_video_id(c.id)]
                    for vid, rec in ledger.records().items():
                        if not is_valid_video_id(vid):
                            continue  # never let an id from a file reach a path
                        if rec.obtained:
                            origin.setdefault(vid, []).append(path.parent / "videos")
                        old = merged.get(vid)
                        merged[vid] = rec if old is None else merge_records(old, rec)
            copied, rejected = _bring_videos(layout, merged, origin)
            target.replace_all(merged)
            target.add_checks(checks)  # census rows: a shard's census joins this root's
            checks = target.checks()
            target.log_run(utc_now(), {"merge": [str(p) for p in paths]}, {"records": len(merged), "copied": copied})
        manifest = write_manifest(layout, merged, ds.annotations_hash)
        if checks:
            write_health(ds, merged, checks)
    counts = {k: v for k, v in manifest["counts"].items() if k != "missing"}
    return MergeResult(
        dataset=dataset,
        inputs=[str(p) for p in paths],
        records=len(merged),
        counts=counts,
        copied=copied,
        missing_files=manifest["counts"].get("missing", 0),
        rejected=rejected,
        manifest_hash=manifest["hash"],
    )


def _bring_videos(
    layout: DatasetLayout, merged: dict[str, VideoRecord], origin: dict[str, list[Path]]
) -> tuple[int, list[str]]:
    """Copy in the ok videos this root lacks, from inputs whose file has the recorded sha256."""
    copied, rejected = 0, []
    for vid, rec in merged.items():
        if not rec.obtained or layout.video_path(vid).is_file():
            continue
        for folder in origin.get(vid, []):
            src = folder / f"{vid}.mp4"
            if not src.is_file():
                continue
            if sha256_file(src) != rec.sha256:
                rejected.append(str(src))
                continue
            info = folder / f"{vid}.info.json"
            if info.is_file() and not layout.info_path(vid).is_file():
                _link_or_copy(info, layout.info_path(vid))
            _link_or_copy(src, layout.video_path(vid))
            copied += 1
            break
    return copied, rejected
