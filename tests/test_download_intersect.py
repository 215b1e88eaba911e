"""``ytfgvc snapshot intersect``: the ids every lab's snapshot holds, from three copies with different coverage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ytfgvc.cli import main
from ytfgvc.download import DownloadConfig, download
from ytfgvc.download.intersect import intersect
from ytfgvc.errors import ValidationError, YtfgvcError

from .loopback import FaultServer, make_dataset
from .utils import make_ids


def three_labs(tmp_path: Path, clip: Path, ids: list[str]) -> list[Path]:
    """Three roots of the same lists, each missing other videos (dead when that lab downloaded)."""
    dead = {"a": {ids[0]}, "b": {ids[1], ids[2]}, "c": {ids[0], ids[3]}}
    manifests = []
    for name, gone in dead.items():
        layout = make_dataset(tmp_path / name, dict.fromkeys(ids, clip), test=(ids[4], ids[5]))
        with FaultServer(layout.mirror_dir) as srv:
            srv.faults.update({vid: ("status", 404) for vid in gone})
            download(tmp_path / name, DownloadConfig(dataset="dltest", source=srv.mp4, retries=0), progress=False)
        manifests.append(layout.manifest_path)
    return manifests


def test_intersect_writes_the_ids_every_snapshot_holds(tmp_path: Path, dl_card, clips):
    ids = make_ids(7, "i")
    manifests = three_labs(tmp_path, clips["ok"], ids)
    out = tmp_path / "core.json"
    res = CliRunner().invoke(main, ["snapshot", "intersect", *map(str, manifests), "--out", str(out)])
    assert res.exit_code == 0, res.output
    core = json.loads(out.read_text())
    assert core["schema"] == "ytfgvc-core-1" and core["ids"] == [ids[4], ids[5], ids[6]] and core["count"] == 3
    assert core["splits"] == {"test": 2, "train": 1} and [s["obtained"] for s in core["snapshots"]] == [6, 5, 5]
    assert "3 videos in all 3 snapshots (they hold 6, 5, 5)" in res.stdout
    plain = CliRunner().invoke(main, ["snapshot", "intersect", *map(str, manifests[:2])])
    assert plain.stdout.split() == [ids[3], ids[4], ids[5], ids[6]]  # one id per line, for a pipe


def test_intersect_counts_recovered_videos_and_refuses_what_it_cannot_compare(tmp_path: Path):
    ids = make_ids(3, "j")

    def manifest(name: str, videos: dict, **kw) -> Path:
        doc = {"schema": "ytfgvc-manifest-2", "dataset": "birds", "annotations": "a" * 64, "hash": "b" * 64,
               "videos": videos, **kw}  # fmt: skip
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc))
        return path

    one = manifest("one", {ids[0]: {"status": "ok"}, ids[1]: {"status": "recovered"}, ids[2]: {"status": "ok"}})
    two = manifest("two", {ids[0]: {"status": "missing"}, ids[1]: {"status": "ok"}, ids[2]: {"status": "ok"}})
    assert intersect([one, two]).ids == [ids[1], ids[2]]  # a file gone from the root is not held
    with pytest.raises(YtfgvcError, match="different lists"):
        intersect([one, manifest("other-lists", {}, annotations="c" * 64)])
    with pytest.raises(YtfgvcError, match="snapshot of 'cars'"):
        intersect([one, manifest("cars", {}, dataset="cars")])
    with pytest.raises(ValidationError, match="not a valid manifest"):
        intersect([manifest("bad", {"../../etc": {"status": "ok"}})])
    with pytest.raises(YtfgvcError, match="is not a manifest"):
        intersect([manifest("old", {}, schema="ytfgvc-ledger-2")])
