"""Made-up results folders for the study reports (runs.json, study.json, attention.json), seeded.

They have the shape of a real study's results (the variants and seeds of a profile, the
test videos, top-5 labels, attention per glimpse) and nothing else: the tests use them to
rebuild every kind of report with ``--results-only`` in a second, and to check that every
interval of a report is recomputed by :mod:`tests.test_study_results`'s checker.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ytfgvc.study.record import write_results
from ytfgvc.study.report import StudyData
from ytfgvc.study.results import RunRecord
from ytfgvc.study.run import Study

CLASSES = 10


def fake_results(study: Study, dest: Path, videos: int = 24, seed: int = 0, skill: dict | None = None) -> Path:
    """Write a results folder for every planned run of ``study``; ``skill``: variant -> P(top-1 right)."""
    rng = np.random.default_rng(seed)
    ids = [f"vid{i:08d}" for i in range(videos)]
    labels = {v: int(rng.integers(CLASSES)) for v in [*ids, "filtered001", "filtered002"]}  # 2 never tested
    skill = skill or {}
    runs, att_runs = [], {}
    for v, s in study.jobs():
        p = skill.get(v.name, 0.3 + 0.4 * rng.random())
        top5 = {}
        for vid in ids:
            others = [c for c in rng.permutation(CLASSES).tolist() if c != labels[vid]]
            right = rng.random() < p
            top5[vid] = ([labels[vid]] + others[:4]) if right else (others[:2] + [labels[vid]] + others[2:4])
        top1 = 100.0 * np.mean([top5[x][0] == labels[x] for x in ids])
        runs.append(
            RunRecord(
                name=study.run_name(v, s), variant=v.name, model=v.model, seed=s, top1=round(float(top1), 4),
                top5_acc=100.0, mean_class=round(float(top1), 4), wall_time_s=10.0 + s, device="fake (cpu)", top5=top5,
            )
        )  # fmt: skip
        if v.name in study.attention:
            vids = []
            for i, vid in enumerate(ids):
                chance = 0.0 if i % 5 == 0 else 0.004 + 0.002 * (i % 3)  # some videos never show the crest
                on = [round(float(chance * rng.uniform(0.5, 3.0)), 4) for _ in range(4)]
                share = 0.25 if chance else 0.0
                vids.append({"video_id": vid, "on_detail": on, "chance": round(chance, 4),
                             "on_visible_frames": [round(float(rng.uniform(0.2, 1.0)), 4) for _ in range(4)],
                             "visible_share": share, "visible_frames": 2 if chance else 0, "frames": 8})  # fmt: skip
            att_runs[study.run_name(v, s)] = {"variant": v.name, "seed": s, "map": [7, 7], "checkpoint": [1, 0.0],
                                              "videos": vids}  # fmt: skip
    data_keys = {v.data_key: v for v in study.variants}
    record = {
        "study": study.name,
        "profile": study.profile,
        "test_labels": labels,
        "data": {
            k: {
                "synth": study.synth_config(v if k else None),
                "short_side": study.short_side,
                "test_frames": {
                    "videos": videos,
                    "test_frames": 8,
                    "prepared_share": 0.3,
                    "test_share": 0.3,
                    "videos_seen": round(min(1.0, 0.5 + float(v.synth.get("visible_fraction", 0.3))), 4),
                },
            }
            for k, v in data_keys.items()
        },  # fmt: skip
        "sessions": [
            {
                "command": f"ytfgvc study {study.name} --profile {study.profile}",
                "device": "fake",
                "host": "test",
                "seconds": 100.0,
                "runs": len(runs),
                "finished_runs": len(runs),
            }
        ],  # fmt: skip
        "wall_time_s": 100.0,
        "device": "fake",
    }
    attention = {"version": "ytfgvc-study-attention-2", "frames": 8, "runs": att_runs} if att_runs else {}
    write_results(study, StudyData(runs, labels, record, attention, "fake"), dest)
    json.loads((dest / "runs.json").read_text())  # valid JSON
    return dest
