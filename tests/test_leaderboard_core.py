"""The common core: three re-scored entries with different coverage, scored on the ids all of them share."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from ytfgvc.leaderboard.core import common_core
from ytfgvc.leaderboard.entries import entry_path, entry_problems, load_entries, read_entry, write_entry
from ytfgvc.leaderboard.render import render
from ytfgvc.leaderboard.submit import rescore, submit

from .lb_utils import import_lists, make_lists, predictions, write_json

REPO = Path(__file__).resolve().parents[1]


def three_entries(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A board (with the paper's rows) and three entries: all 20 test videos, the first 15, the last 15."""
    lists = make_lists(n_test=20, n_classes=8)
    root = import_lists(tmp_path / "root", lists, dataset="birds")
    board = tmp_path / "board"
    shutil.copytree(REPO / "leaderboard" / "submissions", board / "submissions")
    ids = [vid for vid, _ in lists.test]
    plans = {
        "All twenty": ({v: 0 if i % 5 else 1 for i, v in enumerate(ids)}, ids),  # wrong at 0, 5, 10, 15
        "First fifteen": ({v: 0 if i % 2 else 2 for i, v in enumerate(ids)}, ids[:15]),  # right on odd ones
        "Last fifteen": ({v: 3 if v == ids[10] else 0 for v in ids}, ids[5:]),  # wrong at 10 only
    }
    for method, (ranks, covered) in plans.items():
        path = write_json(tmp_path / f"{method}.json", predictions(lists, ranks, "birds", covered))
        submit(path, "birds", method, root, leaderboard_dir=board, allow_partial=True)
    return root, board, ids


def test_every_entry_is_scored_on_the_ids_all_entries_share(tmp_path: Path):
    root, board, ids = three_entries(tmp_path)
    entries = [e for e in load_entries(board) if e["dataset"] == "birds"]
    core = common_core(entries)
    assert core.count == 10 and core.left_out == []  # ids 5..14
    assert core.top1 == {"all-twenty": 80.0, "first-fifteen": 50.0, "last-fifteen": 90.0}
    fifteen = read_entry(entry_path(board, "birds", "last-fifteen"))
    assert fifteen["schema"] == "ytfgvc-entry-2" and set(fifteen["truth"]) == set(fifteen["top5"])

    render(board)
    readme = (board / "README.md").read_text()
    birds = readme.split("## YouTube-Birds")[1].split("## YouTube-Cars")[0]
    cells = {m: re.search(rf"\*\*{m}\*\* \|(?:[^|]*\|){{5}} ([^|]*) \|", birds).group(1) for m in
             ("All twenty", "First fifteen", "Last fifteen", "RRA")}  # fmt: skip
    assert cells == {"All twenty": "80.00 on 10", "First fifteen": "50.00 on 10", "Last fifteen": "90.00 on 10",
                     "RRA": "—"}  # fmt: skip
    assert "common core top-1 %" in birds and "*Common core top-1*" in readme
    page = (board / "index.html").read_text()
    assert 'data-key="core_top1"' in page and '90.00<span class="ci">on 10</span>' in page


def test_an_entry_of_the_previous_schema_is_left_out_until_rescored(tmp_path: Path):
    root, board, ids = three_entries(tmp_path)
    path = entry_path(board, "birds", "first-fifteen")
    old = {k: v for k, v in read_entry(path).items() if k != "truth"} | {"schema": "ytfgvc-entry-1"}
    assert entry_problems(old) == [] and "truth: missing" in " ".join(
        entry_problems({**old, "schema": "ytfgvc-entry-2"})
    )
    path.write_text(json.dumps(old))
    core = common_core([e for e in load_entries(board) if e["dataset"] == "birds"])
    assert core.left_out == ["first-fifteen"] and core.count == 15  # the other two share ids 5..19
    render(board)
    assert "not scored (entry before ytfgvc-entry-2)" in (board / "README.md").read_text()

    r = rescore(root, "birds", board, write=True)
    assert r.changed == ["first-fifteen"]
    upgraded = read_entry(path)
    assert upgraded["schema"] == "ytfgvc-entry-2" and upgraded["scores"] == old["scores"]
    assert common_core([e for e in load_entries(board) if e["dataset"] == "birds"]).count == 10
    write_entry(board, upgraded)  # valid as written
