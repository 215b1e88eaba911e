import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from ytfgvc import __version__
from ytfgvc.cli import main
from ytfgvc.demo import run_demo

from .conftest import TINY_SYNTH
from .utils import write_release


def test_version_and_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "ytfgvc", "--version"], capture_output=True, text=True, check=True)
    assert __version__ in out.stdout


def test_every_command_has_help_with_an_example():
    runner = CliRunner()
    for name, cmd in main.commands.items():
        sub = getattr(cmd, "commands", {name: cmd})
        for subname in sub:
            args = [name] if sub is not getattr(cmd, "commands", None) else [name, subname]
            res = runner.invoke(main, [*args, "--help"])
            assert res.exit_code == 0, (args, res.output)
            assert "Example" in res.output, args


def test_datasets_json_reports_counts(synth_root: Path):
    res = CliRunner().invoke(main, ["--root", str(synth_root), "datasets", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)["datasets"]}
    assert rows["synthetic"]["imported"] and rows["synthetic"]["listed_train"] == 9
    assert rows["birds"]["imported"] is False and rows["birds"]["paper_test"] == 5684


def test_root_comes_from_the_environment(synth_root: Path, monkeypatch):
    monkeypatch.setenv("YTFGVC_ROOT", str(synth_root))
    res = CliRunner().invoke(main, ["datasets", "--json"])
    assert json.loads(res.output)["root"] == str(synth_root)


def test_bad_input_exits_non_zero_with_a_one_line_reason(tmp_path: Path):
    src = write_release(tmp_path / "src", [["short", 0]], [], {"0": "a"})
    res = CliRunner().invoke(main, ["annotations", "import", "synthetic", str(src), "--root", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert "train_list.json[0]: invalid video id 'short'" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(main, ["annotations", "import", "brids", str(src)])
    assert res.exit_code == 2 and "did you mean 'birds'" in res.output


def test_demo_generates_imports_and_lists(tmp_path: Path):
    lines: list[str] = []
    ctx = run_demo(tmp_path, jobs=2, echo=lines.append, synth=TINY_SYNTH)
    assert ctx.results["synth"].videos == 12
    assert any("synthetic: 9 train / 3 test listed" in line for line in lines), lines
    assert "demo finished" in lines[-2] and "ytfgvc study rra-vs-tsn" in lines[-1]  # then the next steps


def _all_commands(group=None, prefix=""):
    import click

    group = group or main
    for name, cmd in group.commands.items():
        yield f"{prefix}{name}", cmd
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, f"{prefix}{name} ")


def test_every_option_has_help_text_and_every_command_an_example():
    import click

    missing = []
    for name, cmd in _all_commands():
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.help and p.name not in ("help", "version"):
                missing.append(f"ytfgvc {name} {p.opts[0]}")
        if not isinstance(cmd, click.Group) and "Example" not in (cmd.help or ""):
            missing.append(f"ytfgvc {name}: no example in --help")
    assert missing == []


def test_with_json_errors_are_json_too(tmp_path: Path):
    res = CliRunner().invoke(main, ["benchmark", "synthetic", "--model", "tsn", "--root", str(tmp_path), "--json"])
    assert res.exit_code == 2
    err = json.loads(res.stdout)
    assert err["exit_status"] == 2 and "no train list" in err["error"] and "ytfgvc prepare synthetic" in err["hint"]
    src = write_release(tmp_path / "src", [["short", 0]], [], {"0": "a"})
    res = CliRunner().invoke(main, ["annotations", "import", "synthetic", str(src), "--root", str(tmp_path), "--json"])
    err = json.loads(res.stdout)
    assert res.exit_code == 2 and any("invalid video id 'short'" in p for p in err["problems"])
