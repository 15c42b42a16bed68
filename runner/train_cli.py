"""``cli.py train``: train the torch models on catalog data with purged walk-forward splits.

Only click and small ``gogo2`` helpers load at import time; torch, the models and the
catalog are imported inside the command.
"""

from __future__ import annotations

import click

from gogo2.clikit import config_option, load, symbols_option

EPILOG = """\b
Examples:
  python cli.py train --model cnn
  python cli.py train --model all --seed 7
  python cli.py train --model lstm --symbols BTC/USDT --timeframe 15m --from 2024-01-01 --to 2024-07-01
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--model",
    "model",
    default="all",
    show_default=True,
    help="cnn, lstm, transformer, dqn, a comma-separated list, or all.",
)
@symbols_option
@click.option(
    "--timeframe",
    default=None,
    help="Candles to train on; default train.timeframe, else backtest.timeframe.",
)
@click.option(
    "--from",
    "start",
    default=None,
    metavar="DATE",
    help="First day (UTC); default the first stored candle.",
)
@click.option(
    "--to",
    "end",
    default=None,
    metavar="DATE",
    help="End (UTC, exclusive); default the last stored candle.",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed of weights, shuffles and exploration; default train.seed.",
)
@click.option(
    "--exchange", default=None, help="Catalog exchange; 'synthetic' is the embedded sample."
)
@config_option
def train(
    model: str,
    symbols: str | None,
    timeframe: str | None,
    start: str | None,
    end: str | None,
    seed: int | None,
    exchange: str | None,
    config_path: str | None,
) -> None:
    """Train models on catalog candles; print the splits, the held-out results and the checkpoints.

    Labels are the future return over train.horizon bars against train.threshold; the
    walk-forward folds keep a purge gap of horizon + embargo bars between train,
    validation and test. Each model's last fold is saved to models.dir/<name>.pt.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from runner import train as tr

    settings = load(config_path)
    req = tr.resolve(
        settings,
        model=model,
        symbols=symbols,
        timeframe=timeframe,
        start=start,
        end=end,
        exchange=exchange,
        seed=seed,
    )
    console = Console()
    say = lambda s: console.print(s, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    prepared = tr.load_prepared(
        settings, req["symbols"], req["timeframe"], req["start"], req["end"], req["exchange"]
    )
    span = (tr._day(prepared, 0), tr._day(prepared, prepared.n - 1))
    kind = "SYNTHETIC sample" if prepared.synthetic else "real data"
    say(
        f"data: {', '.join(prepared.symbols)} {prepared.timeframe} on {prepared.exchange} "
        f"({kind}), {span[0]} .. {span[1]}, {prepared.n:,} bars; features: {len(prepared.names)}; "
        f"labels: log return over {settings.train.horizon} bars vs +-{settings.train.threshold}"
    )
    import torch

    torch.use_deterministic_algorithms(True)
    for name in req["names"]:
        say(f"\n== {name} (seed {req['seed']})")
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  val {task.fields[val]:.4f}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            res = tr.train_model(
                name,
                prepared,
                settings,
                seed=req["seed"],
                models_dir=settings.models.dir,
                range_text=span,
                say=say,
                progress=progress,
            )
        for f in res.folds:
            t, h, pr = f.test, f.base["always_hold"], f.base["class_prior"]
            say(
                f"fold {f.split.fold}: {f.train_n:,} train / {f.val_n:,} val / {f.test_n:,} test windows; "
                f"test accuracy {t['accuracy']:.4f} log-loss {t['log_loss']:.4f} | always-hold "
                f"{h['accuracy']:.4f} / {h['log_loss']:.4f} | class prior {pr['accuracy']:.4f} / "
                f"{pr['log_loss']:.4f} | direction {t['direction']:.4f} (chance 0.5)"
                + (f" | greedy return {t['return']:+.4f}" if "return" in t else "")
            )
            say(f"  {name} {f.words}")
        say(f"checkpoint: {res.path} ({res.seconds:.1f}s)")
