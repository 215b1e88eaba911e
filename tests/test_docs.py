"""The docs: README.md stays short, links resolve, the command table is complete, design.md names the schemas."""

from __future__ import annotations

import re
from pathlib import Path

import click

from ytfgvc.cli import main

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DESIGN = REPO / "docs" / "design.md"
MAX_README_LINES = 250
QUICK_START = (
    "pip install torch==2.14.1 torchvision==0.29.1 && pip install -e '.[test]' && ytfgvc demo\npython -m pytest\n"
)

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_SCHEMA = re.compile(r"ytfgvc-[a-z][a-z0-9-]*-\d+")


def doc_files() -> list[Path]:
    return [README, REPO / "benchmarks" / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    out, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower-case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[str]:
    found = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        line = _INLINE_CODE.sub("code", line)
        found += [a or b for a, b in _LINK.findall(line)]
    return found


def command_paths(group: click.Group, prefix: str = "") -> list[str]:
    """Every command ``ytfgvc --help`` leads to: ``datasets``, ``leaderboard submit``, ..."""
    out = []
    for name, cmd in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(cmd, click.Group):
            out += command_paths(cmd, path + " ")
        else:
            out.append(path)
    return out


def section(text: str, title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, f"README.md has no section '## {title}'"
    return m.group(1)


def test_readme_is_short():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; move detail to docs/ (at most {MAX_README_LINES})"


def test_readme_quick_start_is_unchanged():
    assert f"```bash\n{QUICK_START}```" in README.read_text(encoding="utf-8")


def test_relative_links_resolve():
    problems = []
    for doc in doc_files():
        for target in links(doc):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = (doc.parent / file_part).resolve() if file_part else doc
            where = f"{doc.relative_to(REPO)}: ({target})"
            if not dest.exists():
                problems.append(f"{where}: no such file")
            elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
                problems.append(f"{where}: no heading #{anchor} in {dest.relative_to(REPO)}")
    assert not problems, "\n".join(problems)


def test_readme_links_every_page():
    linked = {(REPO / t.partition("#")[0]).resolve() for t in links(README) if not t.startswith("#")}
    pages = [*sorted((REPO / "docs").glob("*.md")), REPO / "benchmarks" / "README.md"]
    unlinked = [str(p.relative_to(REPO)) for p in pages if p.resolve() not in linked]
    assert not unlinked, f"README.md does not link {', '.join(unlinked)}"


def test_slug_follows_github():
    assert slug("Recipes: how each method is trained, and every deviation") == (
        "recipes-how-each-method-is-trained-and-every-deviation"
    )
    assert slug("`frames/<id>/meta.json` (`ytfgvc-frames-1`)") == "framesidmetajson-ytfgvc-frames-1"
    assert slug("RRA at test time (options `test_frames` and `test_fusion`) — guesses") == (
        "rra-at-test-time-options-test_frames-and-test_fusion--guesses"
    )


def test_command_table_names_every_command():
    table = section(README.read_text(encoding="utf-8"), "Commands")
    missing = [p for p in command_paths(main) if not re.search(rf"`ytfgvc {re.escape(p)}[ `]", table)]
    assert not missing, f"README.md's command table lacks: {', '.join(missing)}"
    for flag in ("--status", "--merge", "--executor ray"):
        assert re.search(rf"`ytfgvc download [^`]*{re.escape(flag)}", table), flag
    assert "`ytfgvc benchmark DATASET --table6`" in table


def test_design_names_every_record_schema():
    in_code = {m for p in (REPO / "ytfgvc").rglob("*.py") for m in _SCHEMA.findall(p.read_text(encoding="utf-8"))}
    in_design = set(_SCHEMA.findall(DESIGN.read_text(encoding="utf-8")))
    assert in_code - in_design == set(), f"docs/design.md does not describe {sorted(in_code - in_design)}"
    assert in_design - in_code == set(), f"docs/design.md names schemas the code lacks: {sorted(in_design - in_code)}"


def test_design_points_at_existing_tests_and_modules():
    text = DESIGN.read_text(encoding="utf-8")
    paths = set(re.findall(r"`((?:tests|ytfgvc)/[\w/]+\.py)`", text))
    assert paths, "docs/design.md names no test or module"
    missing = sorted(p for p in paths if not (REPO / p).is_file())
    assert not missing, f"docs/design.md names files that do not exist: {missing}"
