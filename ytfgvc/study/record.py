"""``study.json`` (the test labels, the data and the sessions that ran a study), and a study's results folder.

``study.json`` sits in the study's runs folder (``OUT/<folder>/``) and in its results folder::

    {"study": "rra-vs-tsn", "profile": "gpu",
     "test_labels": {"<id>": 3, ...},
     "data": {"": {"synth": {...}, "short_side": 128, "test_frames": {...}}, "visible_fraction-0.1": {...}},
     "sessions": [{"command": "ytfgvc study ...", "device": "NVIDIA H100 80GB HBM3", "host": "...",
                   "started": "2025-...Z", "seconds": 301.2, "runs": 30, "finished_runs": 30,
                   "variants": [...], "seeds": [...]}],
     "wall_time_s": 301.2, "device": "...", "command": "..."}

``wall_time_s`` is the sum of the sessions' seconds: the time the study took in all (a
session is one ``ytfgvc study`` that ran runs; it is rewritten after every finished run, so
a killed session still counts). ``data[key].test_frames`` says how often the test frames
show the bird (:func:`ytfgvc.study.attention.test_frame_visibility`).

:func:`write_results` writes a results folder from a study's runs; :func:`merge_results`
adds an exported one (a folder or the ``.tar.gz`` of one) to the committed folder.
"""

from __future__ import annotations

import json
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ytfgvc.errors import YtfgvcError
from ytfgvc.system.fsutil import write_json_atomic

RECORD = "study.json"
RUNS = "runs.json"
ATTENTION = "attention.json"


def read_record(path: Path) -> dict[str, Any]:
    """``study.json`` (``{}`` if absent); a record written before sessions existed becomes one session."""
    path = Path(path)
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    if "sessions" not in doc and "wall_time_s" in doc:
        doc["sessions"] = [
            {"command": doc.get("command", ""), "device": doc.get("device", ""), "host": doc.get("host", ""),
             "seconds": doc["wall_time_s"]}
        ]  # fmt: skip
    return doc


def _labels(study, root: Path | str, variant) -> dict[str, int]:
    from ytfgvc.datasets.official import load_official

    return dict(load_official(study.data_root(root, variant), study.dataset).test)


class Session:
    """One session's entry in ``study.json``, rewritten as runs finish."""

    def __init__(self, path: Path, doc: dict[str, Any], index: int) -> None:
        self.path, self.doc, self.index = path, doc, index
        self.finished = 0

    def update(self, seconds: float, finished: int | None = None) -> None:
        """The session's seconds so far (and the runs it finished)."""
        self.finished = self.finished if finished is None else finished
        self.doc["sessions"][self.index].update(seconds=round(seconds, 1), finished_runs=self.finished)
        self.doc["wall_time_s"] = round(sum(s.get("seconds", 0.0) for s in self.doc["sessions"]), 1)
        write_json_atomic(self.path, self.doc)


def open_session(study, root: Path | str, out: Path | str, device: str, jobs: list, already: int = 0) -> Session:
    """Record the data (labels, config, how often the test frames show the bird) and open a session.

    ``jobs``: the (variant, seed) the session is asked for, ``already`` of them finished before.
    """
    from ytfgvc.study.attention import test_frame_visibility
    from ytfgvc.study.run import data_variants

    path = study.runs_root(out) / RECORD
    doc = read_record(path)
    doc.update(study=study.name, profile=study.profile)
    data = doc.setdefault("data", {})
    for v in data_variants(jobs):
        key = v.data_key if v is not None else ""
        labels = _labels(study, root, v)
        if doc.get("test_labels") not in (None, labels):
            raise YtfgvcError(f"the test lists of {study.data_root(root, v)} differ from the study's others",
                              "a variant's data may change the videos, not the lists")  # fmt: skip
        doc["test_labels"] = labels
        data[key] = {
            "synth": study.synth_config(v),
            "short_side": study.short_side,
            "test_frames": test_frame_visibility(
                study.data_root(root, v), study.dataset, sorted(labels), int(study.config.get("test_segments", 8))
            ),
        }
    command = "ytfgvc " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else ""
    sessions = doc.setdefault("sessions", [])
    sessions.append(
        {
            "command": command,
            "device": device,
            "host": platform.node(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": 0.0,
            "runs": len(jobs),
            "already_finished": already,
            "finished_runs": 0,
            "variants": sorted({v.name for v, _ in jobs}),
            "seeds": sorted({s for _, s in jobs}),
        }
    )
    doc.update(command=command, device=device)
    path.parent.mkdir(parents=True, exist_ok=True)
    session = Session(path, doc, len(sessions) - 1)
    session.update(0.0, 0)
    return session


def write_results(study, data, dest: Path) -> Path:
    """Write a results folder (``runs.json``, ``study.json``, ``attention.json``) from a study's runs."""
    from ytfgvc.study.results import write_runs_json

    dest.mkdir(parents=True, exist_ok=True)
    # The test videos the runs were tested on (those the download filters kept), not the whole official list.
    videos = sorted(set().union(*(r.top5 for r in data.runs)) & set(data.labels))
    write_runs_json(dest / RUNS, study.name, study.profile, videos, data.runs)
    write_json_atomic(dest / RECORD, {**data.record, "test_labels": data.labels})
    if data.attention.get("runs"):
        write_json_atomic(dest / ATTENTION, data.attention, indent=None)
    elif (dest / ATTENTION).is_file():
        (dest / ATTENTION).unlink()
    return dest


def _find_results(src: Path, study) -> tuple[Path, Path | None]:
    """The results folder inside an export (or the folder itself), and the export's figures folder."""
    for cand in (src / study.results, src):
        if (cand / RUNS).is_file():
            figures = src / study.folder / "figures"
            return cand, figures if figures.is_dir() else None
    raise YtfgvcError(f"{src} holds no {RUNS} (looked in {src / study.results} and {src})",
                      "pass a folder or .tar.gz written by ytfgvc study --export")  # fmt: skip


def _union(name: str, ours: dict[str, Any], theirs: dict[str, Any], where: str) -> dict[str, Any]:
    for key, value in theirs.items():
        if key in ours and ours[key] != value:
            raise YtfgvcError(
                f"{where}: {name} {key!r} is in both results and differs",
                "results of different sessions cannot be mixed; remove it from the committed results first",
            )
        ours[key] = value
    return ours


def merge_results(study, src: Path, into: Path, figures_into: Path) -> str:
    """Add the exported results ``src`` (a folder or ``.tar.gz`` from ``--export``) to the results folder ``into``.

    Runs, attention entries and data are united (one present in both must be identical);
    sessions are appended; the test labels must agree. A results folder without
    ``runs.json`` (made before per-run predictions were kept) is replaced, with the
    study's figures in ``figures_into`` when the export brings new ones. The export's
    figures of this study go to ``figures_into``. Returns a line saying what was merged.
    """
    from ytfgvc.study.results import read_runs_json, write_runs_json

    with tempfile.TemporaryDirectory() as tmp:
        found, figures = _find_results(_unpacked(src, Path(tmp)), study)
        head_new, runs_new = read_runs_json(found / RUNS)
        if (head_new.get("study"), head_new.get("profile")) != (study.name, study.profile):
            raise YtfgvcError(
                f"{found / RUNS} holds results of study {head_new.get('study')} (profile {head_new.get('profile')}),"
                f" not of {study.name} (profile {study.profile})",
                f"merge it with: ytfgvc study {head_new.get('study')} --profile {head_new.get('profile')}"
                " --results-only --merge ...",
            )
        rec_new = read_record(found / RECORD)
        att_new = read_attention(found)
        into.mkdir(parents=True, exist_ok=True)
        replaced = ""
        if not (into / RUNS).is_file():
            replaced = _clear_old_results(study, into, figures_into if figures is not None else None)
            head, runs, rec, att = head_new, [], {}, {}
        else:
            head, runs = read_runs_json(into / RUNS)
            rec, att = read_record(into / RECORD), read_attention(into)
        other_data = "the two were made from different data (another synth config): merge exports of the same data only"
        if head["videos"] != head_new["videos"]:
            raise YtfgvcError(f"{found / RUNS}: its test videos differ from {into / RUNS}'s", other_data)
        if rec and rec.get("test_labels") != rec_new.get("test_labels"):
            raise YtfgvcError(f"{found / RECORD}: its test labels differ from {into / RECORD}'s", other_data)
        by_name = {r.name: r for r in runs}
        for r in runs_new:
            if r.name in by_name and by_name[r.name].__dict__ != r.__dict__:
                raise YtfgvcError(f"{found / RUNS}: run {r.name} is also in {into / RUNS}, with other results",
                                  "results of different sessions cannot be mixed; remove it from the committed "
                                  "results first")  # fmt: skip
            by_name[r.name] = r
        if att_new.get("runs"):
            att = {**att_new, "runs": _union("attention run", dict(att.get("runs") or {}), att_new["runs"], str(found))}
        write_runs_json(into / RUNS, study.name, study.profile, head["videos"], list(by_name.values()))
        write_json_atomic(into / RECORD, _merged_record(rec, rec_new, str(found)))
        if att.get("runs"):
            write_json_atomic(into / ATTENTION, att, indent=None)
        copied = 0
        if figures is not None:
            figures_into.mkdir(parents=True, exist_ok=True)
            for png in figures.glob(f"{study.figure_prefix}*.png"):
                shutil.copy2(png, figures_into / png.name)
                copied += 1
    return (
        f"{src}: {len(runs_new)} runs, {len(att_new.get('runs') or {})} attention entries, {copied} figures{replaced}"
    )


def _unpacked(src: Path, tmp: Path) -> Path:
    """``src`` itself, or the ``.tar.gz`` ``src`` unpacked into ``tmp``."""
    if not src.is_file():
        return src
    import tarfile

    with tarfile.open(src) as tar:
        tar.extractall(tmp, filter="data")
    return tmp


def read_attention(folder: Path) -> dict[str, Any]:
    """A results or runs folder's ``attention.json`` (``{}`` if absent)."""
    path = folder / ATTENTION
    return json.loads(path.read_text()) if path.is_file() else {}


def _clear_old_results(study, into: Path, figures_into: Path | None) -> str:
    """Remove a results folder's files from before ``runs.json`` (and the study's figures in ``figures_into``,
    when the export brings new ones); returns what was replaced, for the merge's line."""
    stale = [p.name for p in (into / RECORD, into / ATTENTION) if p.is_file()]
    for name in stale:
        (into / name).unlink()
    old_figures = sorted(figures_into.glob(f"{study.figure_prefix}*.png")) if figures_into is not None else []
    for png in old_figures:  # they belong to the replaced results
        png.unlink()
    stale += [f"figures/{p.name}" for p in old_figures]
    return f" (replaced {', '.join(stale)}: no per-run predictions)" if stale else ""


def _merged_record(rec: dict[str, Any], rec_new: dict[str, Any], where: str) -> dict[str, Any]:
    """``study.json`` of the merged results: the data united, the sessions appended (each once), their sums."""
    merged = {**rec_new, **{k: v for k, v in rec.items() if k not in ("data", "sessions")}}
    merged["data"] = _union("data", dict(rec.get("data") or {}), rec_new.get("data") or {}, where)
    sessions = list(rec.get("sessions") or [])
    for s in rec_new.get("sessions") or []:
        if s not in sessions:
            sessions.append(s)
    merged["sessions"] = sessions
    merged["wall_time_s"] = round(sum(s.get("seconds", 0.0) for s in sessions), 1)
    merged["device"] = ", ".join(dict.fromkeys(s.get("device", "") for s in sessions if s.get("device")))
    return merged
