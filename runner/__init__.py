"""Composition of the commands that combine the layers (train, backtest, sweeps)."""
