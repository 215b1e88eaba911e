"""The frame store: packed archives are standard ZIPs of the folder's bytes; the reader; --store packed; --repack."""

import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from ytfgvc.datasets import get_card
from ytfgvc.datasets.inventory import dataset_status
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import KINDS, DatasetLayout
from ytfgvc.prepare import PrepareConfig, prepare_dataset
from ytfgvc.store import (
    FolderFiles,
    PackedError,
    PackedFiles,
    PackedReader,
    PackedWriter,
    StoreReader,
    open_video,
    read_meta,
    stored_ids,
    which_store,
)
from ytfgvc.system.fsutil import is_temporary

from .prepare_utils import encode, panning_frames
from .rawframes_utils import make_prepared

REPO = Path(__file__).resolve().parent.parent


def _contents(layout: DatasetLayout) -> dict[tuple[str, str], dict[str, bytes]]:
    """Every prepared video's files, per (kind, id), through whichever store holds them."""
    out = {}
    for kind in KINDS:
        for vid in stored_ids(layout, kind):
            files = open_video(layout, kind, vid)
            out[(kind, vid)] = {n: files.read(n) for n in files.names()}
            files.close()
    return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> DatasetLayout:
    return make_prepared(tmp_path_factory.mktemp("store"), classes=2, train_per_class=2, test_per_class=1, flow_stack=2)


def test_an_archive_is_a_standard_uncompressed_zip_of_the_folders_bytes(prepared, tmp_path):
    packed = make_prepared(tmp_path, classes=2, train_per_class=2, test_per_class=1, flow_stack=2, store="packed")
    assert _contents(packed) == _contents(prepared) and len(_contents(packed)) == 12
    for kind in KINDS:  # two files a video, and no folder left
        archives = sorted(f"{v}.zip" for v in stored_ids(prepared, kind))
        assert sorted(p.name for p in packed.kind_root(kind).iterdir()) == archives
    vid = sorted(stored_ids(prepared, "flow"))[0]
    archive = packed.flow_archive(vid)
    with zipfile.ZipFile(archive) as z:  # any ZIP reader lists and extracts it
        assert z.testzip() is None and {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
        assert z.comment.decode().startswith("ytfgvc-packed-1 meta.json ")
        z.extractall(tmp_path / "out")
    folder = prepared.flow_dir(vid)
    assert sorted(os.listdir(tmp_path / "out")) == sorted(os.listdir(folder))
    assert all((tmp_path / "out" / n).read_bytes() == (folder / n).read_bytes() for n in os.listdir(folder))
    if shutil.which("unzip"):
        listing = subprocess.run(["unzip", "-l", str(archive)], capture_output=True, text=True, check=True).stdout
        assert "flow_x_00001.jpg" in listing and "meta.json" in listing
    assert read_meta(packed, "flow", vid) == read_meta(prepared, "flow", vid)
    assert read_meta(packed, "flow", vid)["stack"] == 2


def test_the_reader_names_what_is_missing_or_damaged(prepared, tmp_path):
    vid = sorted(stored_ids(prepared, "frames"))[0]
    archive = tmp_path / "a.zip"
    shutil.copy(pack_one(prepared, vid, tmp_path), archive)
    with PackedReader(archive) as r, pytest.raises(PackedError, match="has no member img_09999.jpg"):
        r.read("img_09999.jpg")
    offset = PackedReader(archive).locate("img_00002.jpg")[0]
    data = bytearray(archive.read_bytes())
    data[offset + 30 + 13 + 100] ^= 0xFF  # one byte of the member's data
    archive.write_bytes(bytes(data))
    with PackedReader(archive) as r:
        assert r.read("img_00001.jpg")
        with pytest.raises(PackedError, match="img_00002.jpg is damaged"):
            r.read("img_00002.jpg")
    archive.write_bytes(bytes(data[: len(data) // 2]))  # cut short, as a disk full would leave it
    with pytest.raises(PackedError, match="not a ZIP archive|cut short"):
        PackedReader(archive)


def test_an_archive_cut_inside_its_end_record_is_refused_by_name(prepared, tmp_path):
    archive = pack_one(prepared, sorted(stored_ids(prepared, "frames"))[0], tmp_path)
    data = archive.read_bytes()
    end = data.rfind(b"PK\x05\x06")
    for cut in range(end + 4, len(data) - 22 + 1, 7):  # the end record's signature kept, its fields cut
        archive.write_bytes(data[: min(cut, end + 21)])
        with pytest.raises(PackedError, match="not a ZIP archive, or is cut short"):
            PackedReader(archive)


def test_member_names_with_multibyte_characters_are_found(tmp_path):
    names = ["\u00e9_1.jpg", "a_12.jpg", "b_12.jpg", *(f"c_{i:02d}.jpg" for i in range(10))]  # 8 bytes each
    archive = tmp_path / "utf8.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in names:  # the multi-byte name first
            z.writestr(name, name.encode())
    with PackedReader(archive) as r:
        assert sorted(r.names()) == sorted(names)
        assert all(r.read(n) == n.encode() for n in names)


def pack_one(layout: DatasetLayout, vid: str, where: Path) -> Path:
    out = where / f"{vid}.zip"
    w = PackedWriter(out)
    folder = FolderFiles(layout.frames_dir(vid))
    for n in folder.names():
        if n != "meta.json":
            w.add(n, folder.read(n))
    w.close(folder.read("meta.json"))
    return out


def test_archives_made_by_other_tools_are_read_or_refused_by_name(tmp_path):
    names = {f"f{i}.jpg" if i % 3 else f"longer_name_{i}.jpg": os.urandom(50 + i) for i in range(30)}
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as z:  # unsorted, names of several lengths, an extra field
        for name, data in reversed(names.items()):
            info = zipfile.ZipInfo(name)
            info.extra = b"\x99\x99\x04\x00abcd"
            z.writestr(info, data)
        z.writestr("meta.json", b'{"a": 1}')
    files = PackedFiles(plain)
    assert all(files.read(n) == d for n, d in names.items())  # searched, then (past 8) parsed
    assert files.meta() == {"a": 1} and files.has("f1.jpg") and not files.has("f0.jpg.x")
    deflated = tmp_path / "deflated.zip"
    with zipfile.ZipFile(deflated, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("img_00001.jpg", b"x" * 1000)
    with pytest.raises(PackedError, match="compressed or encrypted"):
        PackedReader(deflated).read("img_00001.jpg")


def test_the_reader_cache_is_bounded_per_process_and_names_the_fix(prepared, tmp_path):
    packed = make_prepared(tmp_path, classes=2, train_per_class=2, test_per_class=1, store="packed")
    reader = StoreReader(packed, max_open=2)
    ids = sorted(stored_ids(packed, "frames"))
    for vid in ids[:3]:
        assert reader.video("frames", vid).read("img_00001.jpg")[:2] == b"\xff\xd8"
    assert len(reader._open) == 2
    reader._pid = -1  # as after a fork: the parent's descriptors are dropped, the child opens its own
    reader.video("frames", ids[0])
    assert len(reader._open) == 1
    assert pickle.loads(pickle.dumps(reader))._open == {}  # what a spawned loader worker gets
    with pytest.raises(YtfgvcError, match="cannot read flow files of .*neither") as e:
        reader.video("flow", ids[0])
    assert "ytfgvc prepare synthetic --flow" in e.value.hint


def _pan_root(tmp_path: Path, n: int, frames: int = 10) -> DatasetLayout:
    layout = DatasetLayout(tmp_path, "synthetic")
    layout.videos_dir.mkdir(parents=True)
    for i in range(n):
        encode(layout.video_path(f"pan{i:08d}"), panning_frames(frames, 48, 64, dx=2, seed=i), fps=10)
    return layout


def test_prepare_store_packed_writes_two_files_a_video_holding_the_folder_stores_files(tmp_path):
    a, b = _pan_root(tmp_path / "a", 2), _pan_root(tmp_path / "b", 2)
    cfg = PrepareConfig(jobs=1, flow=True, flow_stack=2, flow_params={"nscales": 2, "warps": 1})
    prepare_dataset(a.root, "synthetic", cfg)
    r = prepare_dataset(b.root, "synthetic", cfg.replace(store="packed"))
    assert r.made_frames == r.made_flow == 2
    for kind in KINDS:
        assert sorted(p.name for p in b.kind_root(kind).iterdir()) == ["pan00000000.zip", "pan00000001.zip"]
    folders, archives = _contents(a), _contents(b)
    assert folders.keys() == archives.keys()
    for key, files in folders.items():
        assert files.keys() == archives[key].keys()
        assert all(files[n] == archives[key][n] for n in files if n != "meta.json"), key  # the same JPEG bytes
    assert dataset_status(b.root, get_card("synthetic")).prepared == 2
    again = prepare_dataset(b.root, "synthetic", cfg.replace(store="packed"))
    assert again.already == 2 and again.made_frames == again.made_flow == 0
    assert prepare_dataset(b.root, "synthetic", cfg).already == 2  # the folder store reads what is packed
    redo = prepare_dataset(b.root, "synthetic", cfg.replace(force=True, flow=False))  # --force --store folder
    assert redo.made_frames == 2 and which_store(b, "frames", "pan00000000") == "folder"
    assert not b.frames_archive("pan00000000").exists() and which_store(b, "flow", "pan00000000") == "packed"


def test_repack_converts_in_place_and_a_second_run_has_nothing_to_do(prepared, tmp_path):
    root = tmp_path / "r"
    shutil.copytree(prepared.root, root)
    layout = DatasetLayout(root, "synthetic")
    before = _contents(layout)
    r = prepare_dataset(root, "synthetic", PrepareConfig(repack=True, store="packed", jobs=1))
    assert (r.videos, r.repacked, r.folders_left, r.errors) == (6, 6, 0, {}) and r.archives == 12
    assert r.files == sum(len(f) for f in before.values()) and "repacked 6 of 6" in r.summary()
    assert _contents(layout) == before
    assert all(p.suffix == ".zip" for k in KINDS for p in layout.kind_root(k).iterdir())
    again = prepare_dataset(root, "synthetic", PrepareConfig(repack=True, store="packed"))
    assert (again.videos, again.repacked) == (0, 0)
    with pytest.raises(YtfgvcError, match="--repack converts what is prepared"):
        PrepareConfig(repack=True, store="packed", flow=True)


def test_repack_resumes_from_every_state_a_kill_leaves(prepared, tmp_path, monkeypatch):
    import ytfgvc.store.sink as sink

    root = tmp_path / "r"
    shutil.copytree(prepared.root, root)
    layout = DatasetLayout(root, "synthetic")
    before = _contents(layout)
    vid = sorted(stored_ids(layout, "frames"))[0]
    # 1. killed while writing: a torn temporary archive beside the folder
    (layout.frames_root / f".tmp-{vid}.zip.abc123").write_bytes(b"PK\x03\x04torn")
    # 2. killed between the rename and the folder's removal: archive and folder both there
    monkeypatch.setattr(sink, "remove_folder", lambda folder: (_ for _ in ()).throw(KeyboardInterrupt))
    from ytfgvc.store.repack import repack_folder

    with pytest.raises(KeyboardInterrupt):
        repack_folder(layout.flow_dir(vid), layout.flow_archive(vid))
    assert layout.flow_archive(vid).is_file() and layout.flow_dir(vid).is_dir()
    assert which_store(layout, "flow", vid) == "packed" and _contents(layout) == before  # readers see it whole
    monkeypatch.undo()
    # 3. killed while the folder was being deleted: what is left has a temporary name
    gone = layout.frames_root / f".tmp-{vid}.gone.xyz"
    gone.mkdir()
    (gone / "img_00001.jpg").write_bytes(b"x")
    r = prepare_dataset(root, "synthetic", PrepareConfig(repack=True, store="packed", jobs=1))
    assert r.folders_left == 0 and not r.errors and _contents(layout) == before
    assert not [p for k in KINDS for p in layout.kind_root(k).iterdir() if is_temporary(p) or p.is_dir()]


def test_a_killed_repack_loses_nothing_and_the_next_run_finishes(tmp_path):
    layout = make_prepared(tmp_path, classes=4, train_per_class=12, test_per_class=3, frames=(20, 30), flow_stack=2)
    before = _contents(layout)
    cmd = [sys.executable, "-m", "ytfgvc", "prepare", "synthetic", "--repack", "--jobs", "1", "--root", str(tmp_path)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:  # until the first video is repacked
            if any(p.suffix == ".zip" for p in layout.flow_root.iterdir()):
                break
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the repack finished before it could be killed"
    done = stored_ids(layout, "flow")
    assert "packed" in done.values() and "folder" in done.values()  # killed mid-way
    assert _contents(layout) == before  # every video whole, in one store or the other
    r = prepare_dataset(tmp_path, "synthetic", PrepareConfig(repack=True, store="packed", jobs=1))
    assert r.folders_left == 0 and not r.errors and _contents(layout) == before
    assert set(stored_ids(layout, "frames").values()) == {"packed"} == set(stored_ids(layout, "flow").values())
