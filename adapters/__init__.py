"""Exchange adapters: the two seams between the runner and the outside world.

* ``adapters.feeds``: market feeds yielding closed candles, one step per base bar (replay of
  the catalog, ccxt REST polling, ccxt.pro websocket with REST fallback).
* ``adapters.broker``: the broker seam (``on_bar``, ``submit``, ``account``, ``finish``) and
  the paper broker, which fills through the backtest kernel itself.
* ``adapters.exchange``: keyless ccxt clients for the feeds, with the ``--api-url`` override.

Strategies never touch these; ``runner`` composes them.
"""
