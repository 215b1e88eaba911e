"""Strict validation of predictions files: one test per rejection rule, each naming the defect and where."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ytfgvc.errors import YtfgvcError
from ytfgvc.leaderboard.scoring import score_top5
from ytfgvc.predictions import build_predictions, validate_bytes, validate_file

from .lb_utils import make_lists, predictions, ranked, write_json

LISTS = make_lists(n_test=12, n_classes=8)
IDS = [vid for vid, _ in LISTS.test]


def problems_of(obj, allow_partial: bool = False, dataset: str = "synthetic") -> list[str]:
    raw = (obj if isinstance(obj, str) else json.dumps(obj)).encode()
    report = validate_bytes(raw, LISTS, dataset, allow_partial=allow_partial)
    return [str(p) for p in report.problems]


def only(problems: list[str], *fragments: str) -> str:
    """The one problem containing every fragment."""
    hits = [p for p in problems if all(f in p for f in fragments)]
    assert len(hits) == 1, (fragments, problems)
    return hits[0]


def test_a_valid_file_is_accepted_and_ranked_in_listed_order(tmp_path: Path):
    report = validate_file(write_json(tmp_path / "p.json", predictions(LISTS)), LISTS, "synthetic")
    assert report.ok and report.problems == [] and report.warnings == []
    pred = report.predictions
    assert pred is not None and len(pred.top5) == 12 and pred.coverage == 1.0
    assert pred.manifest == "ab" * 32 and pred.external_data == {"used": False, "details": ""}
    assert pred.top5[IDS[3]][0] == LISTS.test[3][1]


def test_equal_scores_keep_the_listed_order():
    obj = predictions(LISTS)
    obj["results"][IDS[0]] = [{"label": y, "score": 0.5} for y in (7, 6, 0, 1, 2)]
    report = validate_bytes(json.dumps(obj).encode(), LISTS, "synthetic")
    assert report.ok and report.predictions.top5[IDS[0]] == [7, 6, 0, 1, 2]


def test_only_the_first_five_labels_are_kept():
    obj = predictions(LISTS)
    obj["results"][IDS[0]] = [{"label": y, "score": 1 - y / 10} for y in range(8)]
    report = validate_bytes(json.dumps(obj).encode(), LISTS, "synthetic")
    assert report.ok and report.predictions.top5[IDS[0]] == [0, 1, 2, 3, 4]


def test_rejects_a_json_value_that_is_not_an_object():
    assert only(problems_of([1, 2]), "file", "expected a JSON object, got a JSON array")


def test_rejects_invalid_json_naming_line_and_column():
    assert only(problems_of('{"version": \n  oops}'), "file", "invalid JSON at line 2")


def test_rejects_json_nested_too_deeply_or_with_absurd_numbers():
    assert "JSON nested too deeply" in problems_of("[" * 100_000 + "]" * 100_000)[0]
    assert "invalid JSON" in problems_of('{"version": ' + "9" * 5000 + "}")[0]


def test_rejects_bytes_that_are_not_utf8():
    report = validate_bytes(b'{"a": "\xff"}', LISTS, "synthetic")
    assert "not UTF-8" in str(report.problems[0])


def test_rejects_an_unsupported_version():
    obj = {**predictions(LISTS), "version": "ytfgvc-predictions-9"}
    assert only(problems_of(obj), "version", "unsupported version 'ytfgvc-predictions-9'")


def test_rejects_the_wrong_dataset():
    obj = {**predictions(LISTS), "dataset": "cars"}
    assert only(problems_of(obj), "dataset", "for 'cars', not 'synthetic'")


def test_rejects_missing_ids_and_lists_every_one():
    obj = predictions(LISTS, ids=IDS[3:])
    text = only(problems_of(obj), "3 official test ids are missing")
    assert all(vid in text for vid in IDS[:3])


def test_missing_ids_are_a_warning_when_partial_coverage_is_allowed():
    report = validate_bytes(
        json.dumps(predictions(LISTS, ids=IDS[3:])).encode(), LISTS, "synthetic", allow_partial=True
    )
    assert report.ok and report.missing == IDS[:3]
    assert "3 official test ids have no prediction" in str(report.warnings[0])
    assert report.predictions.coverage == pytest.approx(9 / 12)


def test_long_lists_of_ids_are_all_in_the_json_report():
    lists = make_lists(n_test=60, n_classes=8)
    report = validate_bytes(json.dumps(predictions(lists, ids=[])).encode(), lists, "synthetic")
    problem = next(p for p in report.problems if "missing" in p.message)
    assert "and 40 more" in str(problem)
    assert problem.to_dict()["ids"] == [vid for vid, _ in lists.test]


def test_rejects_ids_not_in_the_test_list_naming_them():
    obj = predictions(LISTS)
    obj["results"]["zzzzzzzzzzz"] = ranked(0, 8, 0)
    obj["results"]["../../etc/passwd"] = ranked(0, 8, 0)
    text = only(problems_of(obj), "2 ids are not in the official test list")
    assert "'zzzzzzzzzzz'" in text and "'../../etc/passwd'" in text


def test_rejects_a_repeated_id_found_while_parsing():
    body = json.dumps(predictions(LISTS))
    extra = f'"{IDS[5]}": {json.dumps(ranked(0, 8, 0))}'
    text = body.replace('"results": {', '"results": {' + extra + ", ", 1)
    assert only(problems_of(text), "results", "ids repeated", IDS[5])


def test_rejects_a_repeated_top_level_key():
    text = json.dumps(predictions(LISTS)).replace('"dataset": "synthetic"', '"dataset": "synthetic", "dataset": "x"')
    assert only(problems_of(text), "'dataset'", "repeated at the top level")


def test_rejects_a_key_repeated_inside_a_label_object():
    text = json.dumps(predictions(LISTS)).replace('{"label": 0, ', '{"label": 0, "label": 1, ', 1)
    assert only(problems_of(text), f"results['{IDS[0]}'][0]", "key 'label' is repeated")


def test_rejects_an_unknown_label():
    obj = predictions(LISTS)
    obj["results"][IDS[2]][3]["label"] = 99
    assert only(problems_of(obj), f"results['{IDS[2]}'][3].label", "unknown label 99")


@pytest.mark.parametrize("label", ["3", 3.0, True, None])
def test_rejects_a_label_that_is_not_an_integer(label):
    obj = predictions(LISTS)
    obj["results"][IDS[1]][0]["label"] = label
    assert only(problems_of(obj), f"results['{IDS[1]}'][0].label", "is not an integer label id")


def test_rejects_a_label_repeated_within_one_video():
    obj = predictions(LISTS)
    items = obj["results"][IDS[4]]
    items[2]["label"] = items[0]["label"]
    assert only(problems_of(obj), f"results['{IDS[4]}'][2].label", f"label {items[0]['label']} is repeated")


def test_rejects_fewer_than_five_labels():
    obj = predictions(LISTS)
    obj["results"][IDS[6]] = obj["results"][IDS[6]][:4]
    assert only(problems_of(obj), f"results['{IDS[6]}']", "has 4 labels, fewer than the 5 required")


def test_a_dataset_of_fewer_than_five_classes_needs_every_class():
    lists = make_lists(n_test=3, n_classes=3)
    obj = predictions(lists)
    for vid, y in lists.test:
        obj["results"][vid] = ranked(y, 3, 0, k=3)
    assert validate_bytes(json.dumps(obj).encode(), lists, "synthetic").ok
    obj["results"][lists.test[0][0]] = obj["results"][lists.test[0][0]][:2]
    report = validate_bytes(json.dumps(obj).encode(), lists, "synthetic")
    assert "has 2 labels, fewer than the 3 required" in str(report.problems[0])


@pytest.mark.parametrize(
    ("literal", "why"),
    [
        ("NaN", "NaN is not a finite number"),
        ("Infinity", "Infinity is not a finite number"),
        ("-Infinity", "-Infinity is not a finite number"),
        ("1e400", "too large to be a finite number"),
        ("1" + "0" * 400, "too large to be a finite number"),
        ('"0.5"', "'0.5' is a string, not a number"),
        ("true", "true is a boolean, not a number"),
        ("null", "null is not a number"),
    ],
)
def test_rejects_a_score_that_is_not_a_finite_real_number(literal: str, why: str):
    obj = predictions(LISTS)
    obj["results"][IDS[7]][1]["score"] = "__SCORE__"
    text = json.dumps(obj).replace('"__SCORE__"', literal)
    assert only(problems_of(text), f"results['{IDS[7]}'][1].score", why)


def test_rejects_scores_that_disagree_with_the_listed_order():
    obj = predictions(LISTS)
    obj["results"][IDS[8]][3]["score"] = 5.0
    assert only(problems_of(obj), f"results['{IDS[8]}'][3].score", "higher than the score before it")


def test_rejects_bad_manifest_and_external_data():
    obj = {**predictions(LISTS), "manifest": "not-a-hash", "external_data": {"used": "no"}}
    problems = problems_of(obj)
    assert only(problems, "manifest", "is not a sha256")
    assert only(problems, "external_data.used", "is not true or false")
    del obj["external_data"]
    assert only(problems_of(obj), "external_data", "missing or not an object")
    obj["external_data"] = {"used": True, "details": " "}
    assert only(problems_of(obj), "external_data.details", "say which")
    obj["external_data"] = {"used": True, "details": "ImageNet-21k\u202e\nand Kinetics"}  # shown on the page
    assert only(problems_of(obj), "external_data.details", "invisible control or format characters (U+202E)")
    obj["external_data"] = {"used": True, "details": "ImageNet-21k\nand Kinetics-400"}  # a newline is fine
    assert not [p for p in problems_of(obj) if p.startswith("external_data")]


def test_a_file_over_the_size_cap_is_refused_before_it_is_read(tmp_path: Path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as f:
        f.truncate(50 << 30)  # sparse: 50 GB on paper, nothing on disk; reading it would never finish
    report = validate_file(path, LISTS, "synthetic")
    assert "file: too large: 53687091200 bytes is over the" in str(report.problems[0])
    small = write_json(tmp_path / "p.json", predictions(LISTS))
    assert "too large" in str(validate_file(small, LISTS, "synthetic", max_bytes=100).problems[0])


def test_a_missing_file_is_a_one_line_error(tmp_path: Path):
    with pytest.raises(YtfgvcError, match="no such file"):
        validate_file(tmp_path / "nope.json", LISTS, "synthetic")


def test_every_problem_is_listed_at_once():
    obj = {**predictions(LISTS, ids=IDS[1:]), "version": "v0", "dataset": "cars"}
    obj["results"][IDS[2]][0]["score"] = "high"
    obj["results"][IDS[3]][1]["label"] = 42
    problems = problems_of(obj)
    for fragment in ("version", "dataset", "missing", f"results['{IDS[2]}'][0].score", f"results['{IDS[3]}'][1].label"):
        assert any(fragment in p for p in problems), (fragment, problems)


def test_ten_thousand_ids_validate_and_score_exactly(tmp_path: Path):
    lists = make_lists(n_test=10_000, n_classes=200)
    ids = [vid for vid, _ in lists.test]
    # 70% right at top-1, 15% right at rank 3, 15% wrong: top-1 70%, top-5 85%.
    ranks = {vid: (0 if i % 20 < 14 else 2 if i % 20 < 17 else None) for i, vid in enumerate(ids)}
    path = write_json(tmp_path / "p.json", predictions(lists, ranks))
    report = validate_file(path, lists, "synthetic")
    assert report.ok, report.problems[:3]
    scores = score_top5(report.predictions.top5, lists)
    assert (scores.top1, scores.top5, scores.n_scored, scores.coverage) == (70.0, 85.0, 10_000, 1.0)
    lo, hi = scores.intervals["top1"]
    assert lo < 70.0 < hi and hi - lo < 2.5
    assert len(scores.per_class) == 200


def test_build_predictions_writes_a_file_that_validates():
    lists = make_lists(n_test=6, n_classes=7)
    scores = np.eye(7)[[y for _, y in lists.test]] + 0.01
    obj = build_predictions("synthetic", None, [vid for vid, _ in lists.test], scores)
    report = validate_bytes(json.dumps(obj).encode(), lists, "synthetic")
    assert report.ok and all(r[0] == y for (_, y), r in zip(lists.test, report.predictions.top5.values(), strict=True))
    with pytest.raises(ValueError, match="finite"):
        build_predictions("synthetic", None, ["a"], np.array([[np.nan] * 7]))
