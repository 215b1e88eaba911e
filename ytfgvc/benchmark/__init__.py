"""The benchmark: presets and configs (:mod:`.config`), one run trained and tested under the
protocol (:mod:`.run`), its records (:mod:`.records`) and the Table 6 comparison (:mod:`.table6`).
The samplers and crops are in :mod:`ytfgvc.data`, the training loop in :mod:`ytfgvc.engine`.
"""
