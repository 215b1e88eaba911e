import json
from pathlib import Path

import pytest

from ytfgvc.datasets.official import import_annotations, load_official
from ytfgvc.errors import ValidationError, YtfgvcError
from ytfgvc.layout import DatasetLayout

from .utils import make_ids, write_release

LABELS = {str(i): f"class {i}" for i in range(10)}


def good_release(folder: Path) -> Path:
    ids = make_ids(160)
    train = [[v, i % 10] for i, v in enumerate(ids[:110])]
    test = [[v, i % 10] for i, v in enumerate(ids[110:])]
    return write_release(folder, train, test, LABELS)


def test_import_installs_files_and_checksums(tmp_path: Path):
    src = good_release(tmp_path / "src")
    r = import_annotations(tmp_path / "root", "synthetic", src)
    assert r.status == "imported" and r.counts == {"classes": 10, "train": 110, "test": 50}
    assert r.warnings == []
    layout = DatasetLayout(tmp_path / "root", "synthetic")
    meta = json.loads(layout.checksums_path.read_text())
    assert set(meta["files"]) == {"train_list.json", "test_list.json", "label2name.json"}
    lists = load_official(tmp_path / "root", "synthetic")
    assert lists.train[0] == ("v0000000000", 0) and lists.labels[3] == "class 3"


def test_import_is_idempotent_and_refuses_different_files_without_force(tmp_path: Path):
    root = tmp_path / "root"
    src = good_release(tmp_path / "src")
    import_annotations(root, "synthetic", src)
    assert import_annotations(root, "synthetic", src).status == "unchanged"
    other = write_release(tmp_path / "other", [["a" * 11, 0]], [["b" * 11, 0]], {"0": "class 0"})
    with pytest.raises(YtfgvcError, match="--force"):
        import_annotations(root, "synthetic", other)
    assert load_official(root, "synthetic").train[0][0] == "v0000000000"
    assert import_annotations(root, "synthetic", other, force=True).status == "replaced"
    assert load_official(root, "synthetic").train == [("a" * 11, 0)]


def test_count_differences_are_warnings_with_an_exact_diff(tmp_path: Path):
    ids = make_ids(20)
    train, test = [[v, i % 2] for i, v in enumerate(ids[:15])], [[v, 1] for v in ids[15:]]
    src = write_release(tmp_path / "src", train, test, {"0": "a", "1": "b"})
    r = import_annotations(tmp_path / "root", "synthetic", src)
    assert r.status == "imported"
    assert "classes: 2 in label2name.json, card says 10" in r.warnings
    assert "train: 15 videos, card says 110 (-95)" in r.warnings
    assert "test: 5 videos, card says 50 (-45)" in r.warnings


TRAIN = [["aaaaaaaaaaa", 0], ["bbbbbbbbbbb", 1]]
TEST = [["ccccccccccc", 0]]
LAB = {"0": "x", "1": "y"}


@pytest.mark.parametrize(
    "train, test, labels, expected",
    [
        ('[["aaaaaaaaaaa", 0],', TEST, LAB, "train_list.json: invalid JSON at line 1"),
        ({"aaaaaaaaaaa": 0}, TEST, LAB, "train_list.json: expected a JSON array"),
        (TRAIN, [["ccccccccccc", 0, 1]], LAB, "test_list.json[0]: expected a [youtube_id, label_id] pair"),
        ([["short", 0]], TEST, LAB, "train_list.json[0]: invalid video id 'short'"),
        ([["aaaaaaaaaa/", 0]], TEST, LAB, "train_list.json[0]: invalid video id 'aaaaaaaaaa/'"),
        ([["aaaaaaaaaaa", "0"]], TEST, LAB, "train_list.json[0]: label id '0' is not an integer"),
        ([["aaaaaaaaaaa", 7]], TEST, LAB, "train_list.json[0]: label id 7 is not in label2name.json"),
        (
            TRAIN + [["aaaaaaaaaaa", 1]],
            TEST,
            LAB,
            "train_list.json[2]: video id 'aaaaaaaaaaa' is repeated (first at [0])",
        ),
        (
            TRAIN,
            [["bbbbbbbbbbb", 1]],
            LAB,
            "test_list.json[0]: video id 'bbbbbbbbbbb' is also in train_list.json (at [1])",
        ),
        (TRAIN, TEST, '{"0": "x", "0": "z", "1": "y"}', "label2name.json: key '0' is repeated"),
        (TRAIN, TEST, {"zero": "x", "1": "y"}, "label2name.json: key 'zero' is not a label id"),
        (TRAIN, TEST, ["x", "y"], "label2name.json: expected a JSON object"),
    ],
    ids=[
        "bad-json",
        "not-array",
        "not-pair",
        "short-id",
        "unsafe-id",
        "label-not-int",
        "unknown-label",
        "repeat-in-split",
        "in-both-splits",
        "repeated-key",
        "bad-label-key",
        "labels-not-object",
    ],
)
def test_each_defect_is_reported_with_its_location_and_nothing_is_installed(tmp_path, train, test, labels, expected):
    src = write_release(tmp_path / "src", train, test, labels)
    with pytest.raises(ValidationError) as e:
        import_annotations(tmp_path / "root", "synthetic", src)
    assert any(expected in p for p in e.value.problems), e.value.problems
    assert not (tmp_path / "root" / "synthetic" / "annotations").exists()


def test_all_problems_are_reported_at_once(tmp_path: Path):
    src = write_release(tmp_path / "src", [["short", 0], ["aaaaaaaaaaa", 9]], [["aaaaaaaaaaa", 0]], LAB)
    with pytest.raises(ValidationError) as e:
        import_annotations(tmp_path / "root", "synthetic", src)
    assert len(e.value.problems) == 3


@pytest.mark.parametrize(
    "train, test, labels, expected",
    [
        ([], TEST, LAB, "train_list.json: empty"),
        (TRAIN, [], LAB, "test_list.json: empty"),
        ([["aaaaaaaaaaa", 0]], TEST, LAB, "1 classes of label2name.json have no training video (label ids 1)"),
        (TRAIN, TEST, {"0": "x", "1": "y", str(2**63): "z"}, f"label id {2**63} is out of range"),
        (TRAIN, TEST, {"0": "x", "1": "y", "-1": "z"}, "label id -1 is out of range"),
        ("[" * 100_000 + "]" * 100_000, TEST, LAB, "train_list.json: JSON nested too deeply"),
    ],
    ids=["empty-train", "empty-test", "class-without-training", "label-overflow", "negative-label", "deep-nesting"],
)
def test_releases_nothing_could_be_trained_or_scored_on_are_refused(tmp_path, train, test, labels, expected):
    src = write_release(tmp_path / "src", train, test, labels)
    with pytest.raises(ValidationError) as e:
        import_annotations(tmp_path / "root", "synthetic", src)
    assert any(expected in p for p in e.value.problems), e.value.problems
    assert not (tmp_path / "root" / "synthetic" / "annotations").exists()


def test_missing_file_names_what_to_fetch(tmp_path: Path):
    (tmp_path / "src").mkdir()
    with pytest.raises(YtfgvcError, match="missing train_list.json, test_list.json, label2name.json"):
        import_annotations(tmp_path / "root", "birds", tmp_path / "src")


def test_tampered_import_is_detected(tmp_path: Path):
    root = tmp_path / "root"
    import_annotations(root, "synthetic", good_release(tmp_path / "src"))
    p = DatasetLayout(root, "synthetic").official_file("test_list.json")
    p.write_text("[]")
    with pytest.raises(YtfgvcError, match="does not match its recorded checksum"):
        load_official(root, "synthetic")
