"""The leaderboard: strict validation of predictions files, re-scoring, entries, comparison, the page.

* :mod:`ytfgvc.predictions` -- the predictions format (documented there), its strict reader and writer;
* :mod:`.scoring` -- re-scoring with :mod:`ytfgvc.metrics`, coverage, missing-as-wrong figures;
* :mod:`.entries` -- entry files under ``submissions/<dataset>/<slug>.json`` and the paper's rows;
* :mod:`.submit` -- ``submit`` and ``rescore``;  :mod:`.compare` -- paired bootstrap of two entries;
* :mod:`.render` -- ``README.md`` and the self-contained ``index.html`` (template in ``page/``).
"""

from ytfgvc.leaderboard.compare import CompareResult, compare
from ytfgvc.leaderboard.entries import Metadata, load_entries, paper_entries, slugify
from ytfgvc.leaderboard.render import render
from ytfgvc.leaderboard.submit import rescore, submit
from ytfgvc.predictions import PREDICTIONS_VERSION, build_predictions, validate_file

__all__ = [
    "PREDICTIONS_VERSION",
    "CompareResult",
    "Metadata",
    "build_predictions",
    "compare",
    "load_entries",
    "paper_entries",
    "render",
    "rescore",
    "slugify",
    "submit",
    "validate_file",
]
