"""Composition of the commands that span the layers: catalog, strategies, engine, adapters.

The import arrows run catalog -> features -> strategies -> engine; this package sits above
them all (nothing below imports it): the backtest command (``runner.backtest``), the
paper/live runner and the parity report, the training command (``runner.train``), and the
research commands (parameter sweeps, walk-forward, the run store).
"""
