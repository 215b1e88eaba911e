"""The rendered leaderboard: escaping, self-containment, and the committed leaderboard/ folder."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from ytfgvc.datasets import get_card
from ytfgvc.leaderboard.entries import (
    PAPER_TABLE6,
    entry_problems,
    load_entries,
    paper_entries,
    read_entry,
    write_entry,
)
from ytfgvc.leaderboard.render import md, render, script_json
from ytfgvc.leaderboard.submit import submit

from .lb_utils import import_lists, make_lists, predictions, write_json

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "leaderboard"
EVIL = "<script>alert(1)</script>"
EVIL_NOTES = '</script><script>alert(2)</script> "><img src=x onerror=alert(3)> | **x** [y](https://e.example)'


def build_board(tmp_path: Path) -> Path:
    """A leaderboard with the paper's rows, an honest entry and one written by an attacker."""
    lists = make_lists(n_test=20, n_classes=8)
    root = import_lists(tmp_path / "root", lists, dataset="birds")
    board = tmp_path / "board"
    shutil.copytree(COMMITTED / "submissions", board / "submissions")
    ids = [vid for vid, _ in lists.test]
    honest = write_json(
        tmp_path / "a.json", predictions(lists, {v: (0 if i % 5 else 1) for i, v in enumerate(ids)}, "birds")
    )
    partial = write_json(
        tmp_path / "b.json", predictions(lists, {v: (0 if i % 2 else 3) for i, v in enumerate(ids)}, "birds", ids[:15])
    )
    from ytfgvc.leaderboard.entries import Metadata

    submit(honest, "birds", "Honest net", root, leaderboard_dir=board, metadata=Metadata(backbone="R50"))
    evil_meta = Metadata(backbone=EVIL, notes=EVIL_NOTES, code_url="https://e.example/a?b=1&c=2")
    submit(partial, "birds", EVIL, root, leaderboard_dir=board, metadata=evil_meta, allow_partial=True)
    render(board)
    return board


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_board(tmp_path_factory.mktemp("render"))


def test_every_committed_entry_is_valid():
    paths = sorted((COMMITTED / "submissions").glob("*/*.json"))
    assert paths, "the paper's rows are committed"
    for path in paths:
        assert entry_problems(read_entry(path), dataset=path.parent.name, slug=path.stem) == [], path
    assert len(load_entries(COMMITTED)) == len(paths)


def write_paper_entries() -> None:
    """Rewrite the committed paper rows after a deliberate change, then re-render the page.

    python -c 'from tests.test_leaderboard_render import write_paper_entries; write_paper_entries()'
    ytfgvc leaderboard render --leaderboard-dir leaderboard
    """
    for entry in paper_entries():
        write_entry(COMMITTED, entry)


def test_committed_paper_rows_are_the_papers_table6_marked_as_not_rescored():
    committed = {(e["dataset"], e["method"]): e for e in load_entries(COMMITTED) if e["kind"] == "paper"}
    assert committed == {(e["dataset"], e["method"]): e for e in paper_entries()}, "see write_paper_entries"
    cards = {d: get_card(d).paper_table6 for d in ("birds", "cars")}
    assert {(d, m): e["reported"]["top1"] for (d, m), e in committed.items()} == {
        (d, row["method"]): cards[d][row["key"]] for row in PAPER_TABLE6 for d in cards
    }
    assert committed[("birds", "RRA")]["reported"]["top1"] == 73.205  # as printed in the paper
    assert all("scores" not in e and "top5" not in e for e in committed.values())


def test_committed_pages_are_up_to_date(tmp_path: Path):
    shutil.copytree(COMMITTED / "submissions", tmp_path / "submissions")
    render(tmp_path)
    for name in ("README.md", "index.html"):
        assert (tmp_path / name).read_text() == (COMMITTED / name).read_text(), (
            f"leaderboard/{name} is stale: run `ytfgvc leaderboard render`"
        )


def test_rendering_is_deterministic(board: Path, tmp_path: Path):
    shutil.copytree(board / "submissions", tmp_path / "submissions")
    render(tmp_path)
    assert (tmp_path / "index.html").read_bytes() == (board / "index.html").read_bytes()


def test_html_escapes_everything_a_submitter_wrote(board: Path):
    page = (board / "index.html").read_text()
    assert EVIL not in page and "<img" not in page and "onerror=alert(3)>" not in page
    assert len(re.findall(r"<script\b", page)) == 2  # the data block and the page's own script
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="https://e.example/a?b=1&amp;c=2"' in page
    data = re.search(r'<script type="application/json" id="leaderboard-data">(.*?)</script>', page, re.S).group(1)
    assert "<" not in data and ">" not in data and "&" not in data
    assert json.loads(data)["datasets"]["birds"]["rows"]["script-alert-1-script"]["method"] == EVIL


def test_script_json_cannot_close_its_script_element():
    text = script_json({"x": "</script><!-- & \u2028"})
    assert "</" not in text and "<!--" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"x": "</script><!-- & \u2028"}


def test_page_is_self_contained_and_allows_only_its_own_script(board: Path):
    page = (board / "index.html").read_text()
    assert not re.search(r"<(link|img|iframe|object|embed)\b", page)
    assert not re.search(r"<[^>]*\ssrc\s*=", page) and "@import" not in page and "url(" not in page
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs and all(h.startswith(("https://", "http://")) for h in hrefs)  # links to click, never loaded
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1)
    assert csp.startswith("default-src 'none'")
    for tag, directive in (("style", "style-src"), ("script", "script-src")):
        body = re.search(rf"<{tag}>(.*?)</{tag}>", page, re.S).group(1)
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in csp


def test_markdown_escapes_and_shows_coverage(board: Path):
    readme = (board / "README.md").read_text()
    assert "<script" not in readme and "<img" not in readme
    row = next(line for line in readme.splitlines() if "alert(1)" in line)
    assert row.count(" | ") == 17  # no cell was split by a submitter's '|'
    assert "15 / 20 (75.0%)" in row and "&lt;script&gt;" in row
    honest = next(line for line in readme.splitlines() if "Honest net" in line)
    assert "| 80.00 [" in honest and "20 / 20 (100.0%)" in honest and f"`{'ab' * 6}`" in honest
    assert "73.205 (reported)" in readme and "reported in paper, not re-scored" in readme
    assert md("a|b*c_[d](e)`$") == r"a\|b\*c\_\[d\](e)\`\$"


def test_tables_are_sorted_by_top1(board: Path):
    readme = (board / "README.md").read_text()
    birds = readme.split("## YouTube-Birds")[1].split("## YouTube-Cars")[0]
    ranks = [float(m) for m in re.findall(r"^\| \d+ \| \*\*.*?\*\* \| ([\d.]+)", birds, re.M)]
    assert ranks == sorted(ranks, reverse=True) and len(ranks) == 6
