"""Exchange adapters (ccxt live and paper trading). Not built yet."""
