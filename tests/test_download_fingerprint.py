"""Fingerprints at download, and recovery: a file from elsewhere kept only when its fingerprint matches."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from ytfgvc.cli import main
from ytfgvc.download import DownloadConfig, download
from ytfgvc.download.fingerprint import BITS, MAX_DISTANCE, distance, is_phash, perceptual_hash
from ytfgvc.download.ledger import Ledger
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout
from ytfgvc.snapshot import manifest_hash, ok_video_ids
from ytfgvc.system.fsutil import sha256_file

from .loopback import FaultServer, make_dataset
from .utils import decode_bgr, make_ids, remux, scene_frames, write_video


def resized(frames: list[np.ndarray], w: int, h: int) -> list[np.ndarray]:
    return [av.VideoFrame.from_ndarray(f, format="bgr24").reformat(width=w, height=h).to_ndarray(format="bgr24")
            for f in frames]  # fmt: skip


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Scene 1 and its other copies (lower bitrate, larger, VP9 in WebM, remuxed to MKV); scenes 2-5."""
    d = tmp_path_factory.mktemp("scenes")
    out = {f"s{i}": write_video(d / f"s{i}.mp4", scene_frames(i), fps=10) for i in range(1, 6)}
    decoded = decode_bgr(out["s1"])
    out["s1_low"] = write_video(d / "s1_low.mp4", decoded, fps=10, options={"crf": "45"})
    out["s1_480p"] = write_video(d / "s1_480p.mp4", resized(decoded, 854, 480), fps=10, options={"crf": "30"})
    out["s1_vp9"] = write_video(d / "s1_vp9.webm", decoded, fps=10, codec="libvpx-vp9", options={"b": "150k"})
    out["s1_mkv"] = remux(out["s1_low"], d / "s1_low.mkv")
    out["s5_low"] = write_video(d / "s5_low.mp4", decode_bgr(out["s5"]), fps=10, options={"crf": "40"})
    return out


def test_the_same_video_reencoded_or_remuxed_matches_and_another_does_not(scenes):
    ref = perceptual_hash(scenes["s1"], 3.0)
    assert is_phash(ref) and len(ref) == 2 + 5 * 16 + 4
    same = {k: distance(ref, perceptual_hash(scenes[k], 3.0)) for k in ("s1_low", "s1_480p", "s1_vp9", "s1_mkv")}
    others = {k: distance(ref, perceptual_hash(scenes[k], 3.0)) for k in ("s2", "s3", "s4", "s5", "s5_low")}
    assert scenes["s1_low"].stat().st_size < scenes["s1"].stat().st_size / 2  # really another bitrate
    assert max(same.values()) <= MAX_DISTANCE // 4, same  # measured: 0 to 4 of 320
    assert min(others.values()) >= 2 * MAX_DISTANCE, others  # measured: 126 to 196 of 320
    with pytest.raises(ValueError):
        distance(ref, "1:abc")


def lab(root: Path, files: dict[str, Path], **faults) -> DatasetLayout:
    """A root whose lists hold ``files`` (id -> video), downloaded from a loopback server with ``faults``."""
    layout = make_dataset(root, files)
    with FaultServer(layout.mirror_dir) as srv:
        srv.faults.update(faults)
        download(root, DownloadConfig(dataset="dltest", source=srv.mp4, retries=0), progress=False)
    return layout


def statuses(layout: DatasetLayout) -> dict[str, tuple[str, str | None]]:
    with Ledger(layout.ledger_path, "dltest", readonly=True) as ledger:
        return {vid: (r.status, r.reason) for vid, r in ledger.records().items()}


def test_recovery_from_another_lab_keeps_a_matching_file_and_refuses_another_video(tmp_path, dl_card, scenes):
    ids = make_ids(4, "r")
    files = {ids[i]: scenes[f"s{i + 1}"] for i in range(4)}
    lab_a = lab(tmp_path / "a", files)  # lab A got everything in 2018: its manifest lists fingerprints
    manifest_a = json.loads(lab_a.manifest_path.read_text())
    assert manifest_a["schema"] == "ytfgvc-manifest-2"
    assert is_phash(manifest_a["videos"][ids[0]]["fingerprint"]["phash"])
    lab_b = lab(tmp_path / "b", files, **{ids[0]: ("status", 404), ids[1]: ("status", 404)})  # lab B came later
    before = manifest_hash(lab_b)

    offered = tmp_path / "from-a"
    offered.mkdir()
    (offered / f"{ids[0]}.mkv").write_bytes(scenes["s1_mkv"].read_bytes())  # the same video, re-encoded, MKV
    (offered / f"{ids[1]}.mp4").write_bytes(scenes["s5_low"].read_bytes())  # a different video under its id
    (offered / f"{ids[2]}.mp4").write_bytes(scenes["s5"].read_bytes())  # lab B has this one: never looked at
    args = ["download", "dltest", "--root", tmp_path / "b", "--source", offered, "--verify-fingerprints"]
    res = CliRunner().invoke(main, [str(a) for a in [*args, "--fingerprints", lab_a.manifest_path, "--json"]])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["this_run"] == {"recovered": 1, "unavailable": 1}

    got = statuses(lab_b)
    assert got[ids[0]] == ("recovered", "fingerprint matched")
    assert got[ids[1]] == ("unavailable", "fingerprint mismatch") and got[ids[2]][0] == "ok"
    assert ok_video_ids(lab_b) == {ids[0], ids[2], ids[3]} and not lab_b.video_path(ids[1]).exists()
    assert lab_b.video_path(ids[2]).read_bytes() == scenes["s3"].read_bytes()
    manifest = json.loads(lab_b.manifest_path.read_text())
    assert manifest["hash"] == manifest_hash(lab_b) != before  # the snapshot now holds the recovered video
    entry = manifest["videos"][ids[0]]
    origin = entry["origin"]
    assert entry["status"] == "recovered" and entry["sha256"] == sha256_file(lab_b.video_path(ids[0]))
    assert origin["from"] == str((offered / f"{ids[0]}.mkv").resolve())
    assert origin["sha256"] == sha256_file(scenes["s1_mkv"]) and origin["fingerprint"] == str(lab_a.manifest_path)
    assert origin["distance"] <= MAX_DISTANCE and origin["of"] == BITS
    assert entry["fingerprint"]["title"] == manifest_a["videos"][ids[0]]["fingerprint"]["title"]
    with Ledger(lab_b.ledger_path, "dltest", readonly=True) as ledger:
        assert "> 64" in ledger.get(ids[1]).message  # the distance, against the threshold


def test_recovery_from_this_roots_own_ledger_after_the_file_and_the_video_are_gone(tmp_path, dl_card, scenes):
    ids = make_ids(2, "o")
    layout = lab(tmp_path, {ids[0]: scenes["s1"], ids[1]: scenes["s2"]})
    layout.video_path(ids[0]).unlink()  # the file is lost...
    with FaultServer(layout.mirror_dir) as srv:
        srv.faults[ids[0]] = ("status", 404)  # ...and the video has died
        download(tmp_path, DownloadConfig(dataset="dltest", source=srv.mp4, retries=0), progress=False)
    assert statuses(layout)[ids[0]][0] == "unavailable"
    offered = tmp_path / "offered"
    offered.mkdir()
    (offered / f"{ids[0]}.webm").write_bytes(scenes["s1_vp9"].read_bytes())
    cfg = DownloadConfig(dataset="dltest", source=str(offered), verify_fingerprints=True)
    r = download(tmp_path, cfg, progress=False)
    assert r.this_run == {"recovered": 1} and ok_video_ids(layout) == set(ids)
    origin = json.loads(layout.manifest_path.read_text())["videos"][ids[0]]["origin"]
    assert origin["fingerprint"] == "ledger"


def test_recovery_refuses_what_it_cannot_check(tmp_path, dl_card, scenes):
    ids = make_ids(2, "n")
    layout = lab(tmp_path, {ids[0]: scenes["s1"], ids[1]: scenes["s2"]}, **{ids[0]: ("status", 404)})
    offered = tmp_path / "offered"
    offered.mkdir()
    (offered / f"{ids[0]}.mp4").write_bytes(scenes["s1"].read_bytes())
    r = download(tmp_path, DownloadConfig(dataset="dltest", source=str(offered), verify_fingerprints=True),
                 progress=False)  # fmt: skip
    assert r.this_run == {"unavailable": 1} and statuses(layout)[ids[0]][1] == "no fingerprint to check against"
    old = tmp_path / "old-manifest.json"
    old.write_text(json.dumps({"schema": "ytfgvc-manifest-1", "dataset": "dltest", "videos": {}}))
    for kw, words in [
        ({"fingerprints": (old,), "verify_fingerprints": True, "source": str(offered)}, "not a manifest with"),
        ({"fingerprints": (old,)}, "add --verify-fingerprints"),
        ({"verify_fingerprints": True, "source": "youtube"}, "another copy of a video"),
    ]:
        with pytest.raises(YtfgvcError, match=words):
            download(tmp_path, DownloadConfig(dataset="dltest", **kw), progress=False)
