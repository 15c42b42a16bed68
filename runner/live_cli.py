"""``cli.py live``. Only click at module level; ccxt and numba are imported when it runs."""

from __future__ import annotations

import os
from pathlib import Path

import click

from gogo2.clikit import config_option, load, param_option, strategy_option, symbols_option
from gogo2.errors import UserInputError

API_URL_ENV = "GOGO2_EXCHANGE_API_URL"
CONFIRM = "--i-understand-real-money"

LIVE_EPILOG = """\b
Examples:
  python cli.py live --run runs/btc --symbols BTC/USDT --timeframe 1m --dry-check --i-understand-real-money
  python cli.py live --run runs/btc --symbols BTC/USDT --timeframe 1m --i-understand-real-money
  python cli.py live --run runs/btc --clear-kill
Keys: GOGO2_API_KEY, GOGO2_API_SECRET (and GOGO2_API_PASSWORD) in the environment only.
"""


@click.command(epilog=LIVE_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--exchange", default=None, help="ccxt exchange id (default: exchange.name).")
@symbols_option
@click.option("--timeframe", default=None, help="Base timeframe, e.g. 1m, 5m, 1h.")
@strategy_option
@param_option
@click.option("--max-bars", type=int, default=None, help="Stop after N closed bars.")
@click.option("--duration", default=None, help="Stop after this long (90s, 30m, 2h).")
@click.option(
    "--feed",
    type=click.Choice(["ws", "rest"]),
    default="ws",
    show_default=True,
    help="Closed candles by websocket (REST fallback) or by REST polling.",
)
@click.option(
    "--run", "run_dir", default=None, metavar="DIR", help="Run directory holding the journal."
)
@click.option(CONFIRM, "confirmed", is_flag=True, help="Required: orders use real money.")
@click.option("--dry-check", is_flag=True, help="Connect, reconcile, show the next decision, exit.")
@click.option("--flatten-on-kill", is_flag=True, help="The kill switch also sells positions.")
@click.option("--clear-kill", is_flag=True, help="Clear a tripped kill switch of --run DIR.")
@click.option("--api-url", default=None, envvar=API_URL_ENV, hidden=True)
@config_option
def live(
    exchange: str | None,
    symbols: str | None,
    timeframe: str | None,
    strategy: str | None,
    params: tuple[str, ...],
    max_bars: int | None,
    duration: str | None,
    feed: str,
    run_dir: str | None,
    confirmed: bool,
    dry_check: bool,
    flatten_on_kill: bool,
    clear_kill: bool,
    api_url: str | None,
    config_path: str | None,
) -> None:
    """Trade a strategy on an exchange account with real orders.

    The paper runner's loop with an exchange broker: every order journaled before it is
    sent (SQLite in --run DIR), idempotent client ids, reconciliation at start and every
    live.reconcile_every bars, bounded retries, and a kill switch (README, "Live trading").
    """
    import sys

    from gogo2.timeframes import format_time

    settings = load(config_path)
    if clear_kill:
        if run_dir is None:
            raise UserInputError("--clear-kill needs --run DIR (the run to clear).")
        _clear(Path(run_dir).expanduser().resolve())
        return
    if not confirmed:
        raise UserInputError(
            f"live trading places real orders with real money; add {CONFIRM} to go on "
            "(or use cli.py paper)."
        )
    if not os.environ.get("GOGO2_API_KEY") or not os.environ.get("GOGO2_API_SECRET"):
        raise UserInputError(
            "live trading needs the account's keys in the environment: set GOGO2_API_KEY and "
            "GOGO2_API_SECRET (and GOGO2_API_PASSWORD where the exchange asks for one)."
        )
    from runner import paper as session
    from runner.live_session import LiveOptions, run_live

    req, cls = session.validate(
        settings,
        mode=feed,
        start=None,
        end=None,
        symbols=symbols,
        timeframe=timeframe,
        strategy=strategy,
        params=list(params),
        cash=None,
        fee=None,
        slippage=None,
        exchange=exchange,
        max_bars=max_bars,
        duration=duration,
        speed=0.0,
        api_url=api_url,
    )
    if run_dir is None:
        stamp = format_time(int(__import__("time").time() * 1000)).replace(" ", "T")
        base = Path(settings.backtest.report_dir)
        run = base / f"live_{req.strategy}_{stamp.replace(':', '')}"
    else:
        run = Path(run_dir).expanduser().resolve()

    def say(text: str) -> None:
        click.echo(text)
        sys.stdout.flush()

    import ccxt

    try:
        out = run_live(
            settings,
            req,
            cls,
            LiveOptions(run, dry_check=dry_check, flatten_on_kill=flatten_on_kill),
            say=say,
        )
    except ccxt.BaseError as e:
        raise _translate(e, req.exchange) from None
    if not dry_check:
        say(
            f"stopped by {out['stopped_by']}: {out['bars']} bars, {out['orders_sent']} orders "
            f"sent, {out['rejected']} rejected, {out['retries']} retries; journal {run}"
        )


def _clear(run: Path) -> None:
    import time

    from adapters.journal import FILE_NAME, Journal
    from adapters.killswitch import KillSwitch

    if not (run / FILE_NAME).is_file():
        raise UserInputError(f"--run {run} holds no journal ({FILE_NAME}); check the path.")
    j = Journal(run)
    try:
        why = KillSwitch(None, j).clear(int(time.time() * 1000))
    finally:
        j.close()
    click.echo(
        f"kill switch cleared ({why})." if why else "the kill switch of this run is not set."
    )


def _translate(e: Exception, exchange: str) -> Exception:
    """A ccxt error no policy handles, as one line without credentials."""
    import ccxt

    from adapters.journal import scrub
    from gogo2.errors import Gogo2Error

    detail = scrub(str(e)).strip()[:300]
    if isinstance(e, (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended)):
        return UserInputError(
            f"{exchange} refused the account's keys ({type(e).__name__}: {detail}); check "
            "GOGO2_API_KEY / GOGO2_API_SECRET, their trading permission and IP whitelist, and "
            "exchange.sandbox (testnet keys only work on the testnet)."
        )

    class ExchangeRefused(Gogo2Error):
        exit_code = 1

    return ExchangeRefused(
        f"{exchange} answered {type(e).__name__}: {detail}. The journal holds the run; start it "
        "again with the same --run once the cause is fixed."
    )
