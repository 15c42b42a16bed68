"""``cli.py models``: the checkpointed and registered models, and the registry's memory.

Only click and small ``gogo2`` helpers load at import time so ``--help`` stays fast;
torch and the model layer are imported inside the command.
"""

from __future__ import annotations

import logging
from typing import Any

import click

from gogo2.clikit import config_option, load

EPILOG = """\b
Examples:
  python cli.py models                 # checkpoints in models.dir and the registry's memory
  python cli.py models --check         # load every checkpoint, print memory and weights
  python cli.py models --check --config other.yaml
"""


def _table(rows: list[list[str]], head: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [head, *rows]
    ]
    return "\n".join(lines)


def _mb(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}"


def _range(meta: dict[str, Any]) -> str:
    r = meta.get("data_range") or {}
    if not isinstance(r, dict) or not r:
        return "-"
    span = f"{r.get('start', '?')} .. {r.get('end', '?')}"
    extra = [str(r[k]) for k in ("symbol", "symbols", "timeframe") if r.get(k)]
    return f"{span} ({', '.join(extra)})" if extra else span


def _metrics(meta: dict[str, Any]) -> str:
    m = meta.get("metrics") or {}
    if not isinstance(m, dict) or not m:
        return "-"
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items())


def _stats_lines(stats: dict[str, Any]) -> list[str]:
    return [
        f"memory: {stats['total_used_mb']:.2f} of {stats['total_limit_mb']:.1f} MB in use "
        f"({stats['utilization_percent']:.2f} %), {stats['total_free_mb']:.2f} MB free; "
        f"process RSS {stats['process_rss_mb']:.0f} MB",
        f"device: {stats['device']}; when full: {stats['when_full']}",
    ]


class _EchoHandler(logging.Handler):
    """The model layer's warnings (the CPU fallback, a refused model) as ``note:`` lines on stdout."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"note: {record.getMessage()}")


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@click.option(
    "--check",
    is_flag=True,
    help="Register and load every checkpoint (refusing corrupt or mismatched ones, exit 2), "
    "then print the memory table and the orchestrator's weights.",
)
def models(config_path: str | None, check: bool) -> None:
    """List the checkpointed and registered models and the registry's memory."""
    settings = load(config_path)
    log = logging.getLogger("gogo2.models")
    if not any(isinstance(h, _EchoHandler) for h in log.handlers):
        log.addHandler(_EchoHandler(logging.WARNING))
        log.setLevel(logging.WARNING)
        log.propagate = False

    from models.checkpoint import list_checkpoints, read_meta
    from models.errors import CheckpointError
    from models.registry import ModelRegistry, configure_model_registry

    directory = settings.models.dir
    paths = list_checkpoints(directory)
    registry = configure_model_registry(ModelRegistry.from_settings(settings))
    if check:
        _check(settings, registry, paths)
        return
    rows = []
    for p in paths:
        try:
            meta = read_meta(p)
        except CheckpointError as e:
            rows.append(["?", "unreadable", "-", "-", "-", p.name, str(e)[:60] + "...", "-"])
            continue
        name = str(meta.get("name") or p.stem)
        state = "registered" if name in registry else "disk"
        rows.append(
            [
                name,
                str(meta.get("kind", "?")),
                state,
                _mb(float(meta.get("bytes") or 0) / 2**20),
                f"{settings.models.limit_mb(name):.0f}",
                p.name,
                _range(meta),
                _metrics(meta),
            ]
        )
    stats = registry.get_memory_stats()
    for name, s in stats["models"].items():
        if not any(r[0] == name for r in rows):
            rows.append(
                [
                    name,
                    str(s["kind"]),
                    s["device"],
                    _mb(s["size_mb"]),
                    f"{s['limit_mb']:.0f}",
                    "-",
                    "-",
                    "-",
                ]
            )
    click.echo(f"models in {directory}:")
    if rows:
        click.echo(
            _table(
                rows,
                ["name", "kind", "device", "MB", "limit MB", "checkpoint", "trained on", "metrics"],
            )
        )
    else:
        click.echo("  (no checkpoint; a model's save(path) into this folder puts it here)")
    for line in _stats_lines(stats):
        click.echo(line)


def _check(settings: Any, registry: Any, paths: list[Any]) -> None:
    from models.checkpoint import read_meta
    from models.orchestrator import TradingOrchestrator

    orchestrator = TradingOrchestrator(registry, settings)
    for p in paths:
        meta = read_meta(p)
        name = str(meta.get("name") or p.stem)
        own = settings.models.settings_for(name)
        registry.register_checkpoint(
            p, feature_names=own.features, window_size=own.window_size, load=True
        )
        orchestrator.register_model(name, weight=own.weight or 1.0)
    stats = registry.get_memory_stats()
    click.echo(f"checked {len(paths)} checkpoint(s) in {settings.models.dir}: all load.")
    rows = [
        [
            name,
            s["device"],
            _mb(s["memory_mb"]),
            _mb(s["measured_mb"]),
            _mb(s["declared_mb"]),
            f"{s['limit_mb']:.0f}",
            f"{orchestrator.weights.get(name, 0.0):.4f}",
        ]
        for name, s in stats["models"].items()
    ]
    if rows:
        click.echo(
            _table(rows, ["name", "device", "MB", "measured", "declared", "limit MB", "weight"])
        )
    for line in _stats_lines(stats):
        click.echo(line)
