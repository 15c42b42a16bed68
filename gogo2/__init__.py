"""Shared foundation of gogo2: typed configuration, the error tree and timeframe arithmetic.

Nothing in this package imports numba, torch, ccxt or quantstats, so the CLI can
load it on every start.
"""

__version__ = "0.1.0"
