"""Dataset-scale fitting: ``prdlfit batch`` (discover, manifest, resume, quality flags, engines).

Modules: :mod:`~fitter.batch.discover` (which images), :mod:`~fitter.batch.manifest` (durable
JSONL record + Parquet), :mod:`~fitter.batch.runner` (plan and run a job), :mod:`~fitter.batch.stages`
(one batch through a backend), :mod:`~fitter.batch.backend` (the fitter behind a small protocol),
:mod:`~fitter.batch.quality` (flags), :mod:`~fitter.batch.report` (summary + histograms),
engines :mod:`~fitter.batch.local` (process pool) and :mod:`~fitter.batch.ray_engine` (Ray),
:mod:`~fitter.batch.command` (the click command).
"""
