"""The rooms behind :class:`fitter.optimize.Fitter` (one job each).

* :mod:`~fitter.fit.params` — a batch's optimized tensors, their units, bounds and rigid start.
* :mod:`~fitter.fit.point_sets` — the model's part point sets and which points count this iteration.
* :mod:`~fitter.fit.forward` — one forward pass: mesh → camera → image → loss context → terms.
* :mod:`~fitter.fit.run_state` — per-face history, early stopping, freezing, best-iterate restore.
* :mod:`~fitter.fit.loop` — the optimizer and the iterations of one stage.
* :mod:`~fitter.fit.adam` — Adam without the compiler stack's import cost.
* :mod:`~fitter.fit.results` — one face's :class:`~fitter.result.FitResult`.
"""
