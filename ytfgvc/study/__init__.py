"""Studies: many benchmark runs (variants x seeds) on one dataset, then one report.

* :mod:`ytfgvc.study.run` — the study file, the data, the runs (:func:`run_study` is what
  ``ytfgvc study`` calls);
* :mod:`ytfgvc.study.record` — ``study.json`` (labels, data, sessions) and merging results;
* :mod:`ytfgvc.study.results` — the committed results: every run's scores and top-5 predictions;
  what a report is computed from (:func:`~ytfgvc.study.results.load_results`);
* :mod:`ytfgvc.study.stats` — seed-level statistics (hierarchical bootstrap, tests across seeds);
* :mod:`ytfgvc.study.compare` — the runs by variant; two variants compared per seed, over seeds, pooled;
* :mod:`ytfgvc.study.report` — the reports rebuilt from the results (:mod:`ytfgvc.study.fmt`: how
  numbers are written; :mod:`ytfgvc.study.paper`: the paper's ablation tables beside ours);
* :mod:`ytfgvc.study.dose` — the dose-response report (RRA − TSN against redundancy);
* :mod:`ytfgvc.study.attention` — where RRA's glimpses look, against the planted detail.
"""

from ytfgvc.study.run import (
    PROFILES,
    STUDIES,
    Study,
    StudyResult,
    StudySummary,
    Variant,
    ensure_data,
    export_runs,
    load_study,
    run_study,
    run_variants,
)

__all__ = [
    "PROFILES",
    "STUDIES",
    "Study",
    "StudyResult",
    "StudySummary",
    "Variant",
    "ensure_data",
    "export_runs",
    "load_study",
    "run_study",
    "run_variants",
]
