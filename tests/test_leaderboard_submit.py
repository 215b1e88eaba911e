"""submit / rescore / compare, entries and slugs, the CLI, and the demo's leaderboard stage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ytfgvc.cli import main
from ytfgvc.demo import DemoContext, stage_leaderboard
from ytfgvc.errors import ValidationError, YtfgvcError
from ytfgvc.leaderboard.compare import compare
from ytfgvc.leaderboard.entries import (
    Metadata,
    choose_slug,
    entry_path,
    entry_problems,
    is_slug,
    load_entries,
    paper_entries,
    read_entry,
    slugify,
)
from ytfgvc.leaderboard.submit import rescore, submit

from .lb_utils import import_lists, make_lists, predictions, write_json

LISTS = make_lists(n_test=40, n_classes=8)
IDS = [vid for vid, _ in LISTS.test]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return import_lists(tmp_path_factory.mktemp("lb") / "root", LISTS)


def good(tmp_path: Path, name: str = "p.json", wrong_every: int = 4, ids: list[str] | None = None) -> Path:
    """Predictions right at top-1 except every ``wrong_every``-th video (wrong at top-1, right at rank 2)."""
    ranks = {vid: (1 if i % wrong_every == 0 else 0) for i, vid in enumerate(IDS)}
    return write_json(tmp_path / name, predictions(LISTS, ranks, ids=ids))


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("RRA (Inception-V3)", "rra-inception-v3"),
        ("../../etc", "etc"),
        ("../..", None),
        ("Ünïcödé Net", "unicode-net"),
        ("鳥の分類", None),
        ("a" * 300, "a" * 60),
        ("<script>alert(1)</script>", "script-alert-1-script"),
    ],
)
def test_slugs_are_safe_file_names(name: str, slug: str | None):
    got = slugify(name)
    assert is_slug(got) and "/" not in got and ".." not in got and len(got) <= 60
    if slug is None:
        assert got.startswith("method-") and got != slugify(name + "x")
    else:
        assert got == slug


def test_paths_never_come_from_user_input(tmp_path: Path):
    with pytest.raises(YtfgvcError, match="invalid entry name"):
        entry_path(tmp_path, "birds", "../x")
    with pytest.raises(YtfgvcError, match="invalid dataset name"):
        entry_path(tmp_path, "../birds", "x")
    for bad in ("", "   ", "a\nb", "x" * 101):
        with pytest.raises(YtfgvcError, match="--method"):
            submit(tmp_path / "unused.json", "synthetic", bad, tmp_path)


def test_submit_rescores_and_writes_one_entry(tmp_path: Path, root: Path):
    obj = predictions(LISTS, {vid: (1 if i % 4 == 0 else 0) for i, vid in enumerate(IDS)})
    obj["top1"] = 99.9  # a self-reported number: never kept
    path = write_json(tmp_path / "p.json", obj)
    board = tmp_path / "board"
    meta = Metadata(backbone="Inception-V3", frames_crops="25 x 10", code_url="https://example.org/code")
    r = submit(path, "synthetic", "../../etc", root, metadata=meta, leaderboard_dir=board)
    assert r.path == board / "submissions" / "synthetic" / "etc.json" and r.path.resolve().is_relative_to(
        board.resolve()
    )
    entry = read_entry(r.path)
    assert entry["kind"] == "rescored" and entry["method"] == "../../etc"
    s = entry["scores"]
    assert (s["top1"], s["top5"], s["n_scored"], s["n_official"], s["coverage"]) == (75.0, 100.0, 40, 40, 1.0)
    assert s["intervals"]["top1"][0] < 75.0 < s["intervals"]["top1"][1]
    assert "99.9" not in r.path.read_text() and "top1" not in {k for k in entry if k != "scores"}
    assert entry["manifest"] == "ab" * 32 and len(entry["top5"]) == 40
    assert entry["metadata"]["backbone"] == "Inception-V3"
    assert load_entries(board) == [entry]


def test_partial_coverage_needs_allow_partial_and_is_shown(tmp_path: Path, root: Path):
    path = good(tmp_path, ids=IDS[:30])
    board = tmp_path / "board"
    with pytest.raises(ValidationError) as err:
        submit(path, "synthetic", "Partial", root, leaderboard_dir=board)
    assert "10 official test ids are missing" in err.value.report()
    r = submit(path, "synthetic", "Partial", root, leaderboard_dir=board, allow_partial=True)
    s = r.entry["scores"]
    assert (s["n_scored"], s["n_official"], s["coverage"]) == (30, 40, 0.75)
    assert s["missing_as_wrong"]["top1"] == pytest.approx(s["top1"] * 0.75, abs=1e-3)
    assert "10 official test ids have no prediction" in r.warnings[0]


def test_slug_collisions_and_resubmission(tmp_path: Path, root: Path):
    board, path = tmp_path / "board", good(tmp_path)
    first = submit(path, "synthetic", "RRA", root, leaderboard_dir=board)
    other = submit(path, "synthetic", "rra!", root, leaderboard_dir=board)
    assert (first.entry["slug"], other.entry["slug"]) == ("rra", "rra-2")
    with pytest.raises(YtfgvcError, match="already holds 'RRA'.*--replace"):
        submit(path, "synthetic", "RRA", root, leaderboard_dir=board)
    again = submit(
        good(tmp_path, "q.json", wrong_every=2), "synthetic", "RRA", root, leaderboard_dir=board, replace=True
    )
    assert again.replaced and again.path == first.path and again.entry["scores"]["top1"] == 50.0
    assert choose_slug(board, "synthetic", "rra!") == ("rra-2", True)


def test_metadata_is_checked_naming_the_option():
    with pytest.raises(ValidationError) as err:
        Metadata(code_url="javascript:alert(1)", paper_url="https://ok.example/p", backbone="a\x07b")
    report = err.value.report()
    assert "--code-url" in report and "not an http:// or https:// URL" in report and "--backbone" in report
    assert "--paper-url" not in report
    with pytest.raises(ValidationError, match="1 problem"):
        Metadata(notes="x" * 2001)
    assert Metadata(notes="two\nlines").notes == "two\nlines"


def test_a_tampered_entry_is_caught(tmp_path: Path, root: Path):
    board = tmp_path / "board"
    r = submit(good(tmp_path), "synthetic", "Honest", root, leaderboard_dir=board)
    entry = json.loads(r.path.read_text())
    entry["scores"]["coverage"] = 0.5
    r.path.write_text(json.dumps(entry))
    with pytest.raises(ValidationError, match="bad entries") as err:
        load_entries(board)
    assert "synthetic/honest.json: scores.coverage: is not n_scored / n_official" in err.value.report()
    assert "dataset: '<b>' is not a dataset name" in entry_problems({**entry, "dataset": "<b>"})
    r.path.write_text(r.path.read_text().replace('"kind": "rescored"', '"kind": "rescored", "kind": "paper"'))
    with pytest.raises(ValidationError) as err:
        load_entries(board)
    assert "honest.json: not a valid entry file: key 'kind' is repeated" in err.value.report()


def test_rescore_finds_and_fixes_changed_scores(tmp_path: Path, root: Path):
    board = tmp_path / "board"
    r = submit(good(tmp_path), "synthetic", "Model", root, leaderboard_dir=board)
    assert rescore(root, "synthetic", board).changed == []
    entry = json.loads(r.path.read_text())
    entry["scores"]["top1"] = 99.0
    r.path.write_text(json.dumps(entry))
    assert rescore(root, "synthetic", board).changed == ["model"]
    assert rescore(root, "synthetic", board, write=True).changed == ["model"]
    assert read_entry(r.path)["scores"]["top1"] == 75.0
    assert rescore(root, "synthetic", board).changed == []


def test_compare_is_paired_on_common_videos(tmp_path: Path, root: Path):
    board = tmp_path / "board"
    strong = submit(good(tmp_path, "a.json", wrong_every=20), "synthetic", "Strong", root, leaderboard_dir=board)
    weak_path = write_json(
        tmp_path / "b.json", predictions(LISTS, {v: (0 if i % 3 == 0 else 2) for i, v in enumerate(IDS)})
    )
    result = compare(strong.entry["slug"], str(weak_path), "synthetic", root, leaderboard_dir=board)
    assert result.n_common == 40 and result.comparison.significant and result.comparison.diff > 0
    assert "significant at 5%" in result.sentence() and "not significant" not in result.sentence()
    nearly = write_json(tmp_path / "c.json", predictions(LISTS, {IDS[0]: 1, IDS[4]: 0}))  # differs on 2 videos
    close = compare(str(strong.path), str(nearly), "synthetic", root, leaderboard_dir=board)
    assert not close.comparison.significant and "not significant" in close.sentence()
    assert (close.only_a, close.only_b) == (0, 1) and close.sign_test_p == 1.0  # IDS[0] is wrong in both
    assert "they disagree on 1 video" in close.sentence() and "too few for a bootstrap interval" in close.sentence()
    assert "interval [" not in close.sentence()  # a coarse interval is not printed as if it meant something
    same = compare(str(strong.path), str(strong.path), "synthetic", root, leaderboard_dir=board)
    assert "right on exactly the same videos" in same.sentence()
    partial = write_json(tmp_path / "d.json", predictions(LISTS, ids=IDS[:10]))
    assert compare("strong", str(partial), "synthetic", root, leaderboard_dir=board).n_common == 10


def test_compare_refuses_paper_rows(tmp_path: Path, root: Path):
    board = tmp_path / "board"
    row = {**paper_entries()[0], "dataset": "synthetic"}
    (board / "submissions" / "synthetic").mkdir(parents=True)
    (board / "submissions" / "synthetic" / f"{row['slug']}.json").write_text(json.dumps(row))
    with pytest.raises(YtfgvcError, match="reported in a paper, not re-scored"):
        compare(row["slug"], str(good(tmp_path)), "synthetic", root, leaderboard_dir=board)


def test_cli_validate_submit_compare_render(tmp_path: Path, root: Path):
    run = CliRunner().invoke
    board, path = str(tmp_path / "board"), str(good(tmp_path))
    res = run(main, ["leaderboard", "validate", path, "--dataset", "synthetic", "--root", str(root)])
    assert res.exit_code == 0 and "valid: synthetic predictions for 40 / 40" in res.output
    bad = write_json(tmp_path / "bad.json", {**predictions(LISTS), "version": "v2"})
    res = run(main, ["leaderboard", "validate", str(bad), "--dataset", "synthetic", "--root", str(root)])
    assert res.exit_code == 2 and "version: unsupported version 'v2'" in res.output and "Traceback" not in res.output
    res = run(main, ["leaderboard", "validate", str(bad), "--dataset", "synthetic", "--root", str(root), "--json"])
    assert res.exit_code == 2 and json.loads(res.output)["problems"][0]["where"] == "version"
    common = ["--dataset", "synthetic", "--root", str(root), "--leaderboard-dir", board]
    res = run(main, ["leaderboard", "submit", path, "--method", "Mine", "--backbone", "R50", *common, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["scores"]["top1"] == 75.0
    res = run(main, ["leaderboard", "compare", "mine", path, *common])
    assert res.exit_code == 0 and "+0.00 top1 points" in res.output and "no difference to test" in res.output
    res = run(main, ["leaderboard", "render", "--leaderboard-dir", board])
    assert res.exit_code == 0 and "synthetic 1" in res.output
    assert "Mine" in (Path(board) / "README.md").read_text()
    res = run(main, ["leaderboard", "rescore", *common])
    assert res.exit_code == 0 and "1 entries re-scored; differ: none" in res.output


def test_demo_stage_submits_benchmark_predictions_or_the_class_prior(tmp_path: Path, root: Path):
    demo_root = tmp_path / "demo"
    shutil.copytree(root / "synthetic" / "annotations", demo_root / "synthetic" / "annotations")
    line = stage_leaderboard(DemoContext(root=demo_root))
    assert line.startswith("Class prior (train label frequencies): top-1 12.50 [") and "coverage 40/40" in line
    path = good(tmp_path, ids=IDS[:36])
    line = stage_leaderboard(DemoContext(root=demo_root, results={"benchmark": {"predictions": {"tsn": path}}}))
    assert "tsn (demo smoke run): top-1 75.00" in line and "coverage 36/40" in line
    board = demo_root / "leaderboard"
    assert {e["slug"] for e in load_entries(board)} == {"class-prior-train-label-frequencies", "tsn-demo-smoke-run"}
    assert (board / "index.html").is_file() and "tsn (demo smoke run)" in (board / "README.md").read_text()
    stage_leaderboard(DemoContext(root=demo_root))  # idempotent: the same entry is replaced
    assert len(load_entries(board)) == 2


def test_an_entry_shows_the_weights_and_recipe_its_file_states(tmp_path: Path, root: Path):
    from ytfgvc.leaderboard.render import render

    obj = predictions(LISTS, {})
    obj["provenance"] = {"weights": "from scratch", "recipe": "tsn-official; changed: epochs"}
    r = submit(write_json(tmp_path / "p.json", obj), "synthetic", "TSN scratch", root, leaderboard_dir=tmp_path)
    assert r.entry["provenance"] == obj["provenance"]
    r = submit(
        write_json(tmp_path / "q.json", predictions(LISTS, {})),
        "synthetic",
        "Other",
        root,
        leaderboard_dir=tmp_path,
        provenance={"weights": "weights.pth (sha256 0123456789ab)", "recipe": ""},
    )
    assert r.entry["provenance"] == {"weights": "weights.pth (sha256 0123456789ab)"}
    render(tmp_path)
    readme = (tmp_path / "README.md").read_text()
    assert "| starting weights | recipe |" in readme and "tsn-official; changed: epochs" in readme
    assert "weights.pth (sha256 0123456789ab)" in (tmp_path / "index.html").read_text()


@pytest.mark.parametrize("bad", ["\u202eevil", "a\u200bb", "x\ufeff"])
def test_invisible_format_characters_are_refused_with_the_field_named(tmp_path: Path, root: Path, bad: str):
    with pytest.raises(YtfgvcError, match=r"--method: contains invisible control or format characters \(U\+"):
        submit(good(tmp_path), "synthetic", "RRA " + bad, root, leaderboard_dir=tmp_path)
    with pytest.raises(ValidationError) as e:
        Metadata(backbone=bad)
    assert e.value.problems[0].startswith("--backbone: contains invisible")
    obj = predictions(LISTS, {})
    obj["provenance"] = {"weights": bad}
    with pytest.raises(ValidationError) as e:
        submit(write_json(tmp_path / "p.json", obj), "synthetic", "RRA", root, leaderboard_dir=tmp_path)
    assert any(p.startswith("provenance.weights: contains invisible") for p in e.value.problems), e.value.problems
    res = CliRunner().invoke(
        main, ["leaderboard", "submit", str(good(tmp_path)), "--dataset", "synthetic", "--method", "RRA\u202e",
               "--root", str(root), "--leaderboard-dir", str(tmp_path)],
    )  # fmt: skip
    assert res.exit_code == 2 and "U+202E" in res.output


def test_outputs_go_under_root_unless_told_otherwise(tmp_path: Path, root: Path, monkeypatch):
    """Never into ./leaderboard (in a clone: the committed leaderboard) unless asked."""
    monkeypatch.chdir(tmp_path)
    base = ["--dataset", "synthetic", "--root", str(root)]
    res = CliRunner().invoke(main, ["leaderboard", "submit", str(good(tmp_path)), *base, "--method", "Here"])
    assert res.exit_code == 0, res.output
    assert (root / "leaderboard" / "submissions" / "synthetic" / "here.json").is_file()
    assert not (tmp_path / "leaderboard").exists()
    res = CliRunner().invoke(main, ["leaderboard", "render", "--root", str(root)])
    assert res.exit_code == 0 and (root / "leaderboard" / "index.html").is_file()
    res = CliRunner().invoke(main, ["leaderboard", "compare", "here", str(good(tmp_path, "b.json")), *base])
    assert res.exit_code == 0, res.output
