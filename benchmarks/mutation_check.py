"""Mutation check: do the tests notice when a boundary comparison is off by one?

Copies the project's tracked files (``git ls-files``) into a scratch directory, then for
each mutation below replaces one exact piece of text in one file (``lo <= level`` ->
``lo < level`` and the like), runs the test files that guard it with
``python -m pytest -x -q -p no:cacheprovider`` inside the copy, restores the file and
moves on. A mutation is *caught* when the tests fail, *survived* when they pass.
A survivor is a boundary no test pins: add a test that fails on it.

    python benchmarks/mutation_check.py                 # every mutation
    python benchmarks/mutation_check.py --list          # names only
    python benchmarks/mutation_check.py ruin-eq limit-fill-in-bar

Every anchor must occur exactly once in its file; when the code has moved and an anchor
is missing (or ambiguous), the script stops with an error naming the mutation, the file
and the text, before any test runs. It is not part of the test suite (it runs the
relevant tests once per mutation: minutes, not seconds). Numba's cache goes to a
temporary directory so mutated kernels never reach the project's cache. Exit code 0
when every mutation is caught, 1 when any survived, 2 on a missing anchor or setup error.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

KERNEL_TESTS = ("tests/test_engine*.py",)
SCHEMA_TESTS = ("tests/test_schema*.py",)
METRICS_TESTS = ("tests/test_metrics*.py",)
RESAMPLE_TESTS = ("tests/test_resample*.py",)
ASOF_TESTS = ("tests/test_resample*.py", "tests/test_strategies*.py", "tests/test_features*.py")
LOOKAHEAD_TESTS = ("tests/test_lookahead*.py",)


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    """Glob patterns of the test files to run, relative to the project root."""


MUTATIONS: tuple[Mutation, ...] = (
    # ---- engine kernel: attached stops and take-profits
    Mutation(
        "stop-loss-touch-long",
        "engine/nb.py",
        "if (long and lo <= level) or (not long and hi >= level):",
        "if (long and lo < level) or (not long and hi >= level):",
        KERNEL_TESTS,
    ),
    Mutation(
        "stop-loss-touch-short",
        "engine/nb.py",
        "if (long and lo <= level) or (not long and hi >= level):",
        "if (long and lo <= level) or (not long and hi > level):",
        KERNEL_TESTS,
    ),
    Mutation(
        "stop-gap-at-open",
        "engine/nb.py",
        "if (long and o <= level) or (not long and o >= level):",
        "if (long and o < level) or (not long and o >= level):",
        KERNEL_TESTS,
    ),
    Mutation(
        "take-profit-touch",
        "engine/nb.py",
        "if (long and hi >= tp) or (not long and lo <= tp):",
        "if (long and hi > tp) or (not long and lo <= tp):",
        KERNEL_TESTS,
    ),
    Mutation(
        "take-profit-gap-at-open",
        "engine/nb.py",
        "if (long and o >= tp) or (not long and o <= tp):",
        "if (long and o > tp) or (not long and o <= tp):",
        KERNEL_TESTS,
    ),
    # ---- engine kernel: pending limit / stop entries
    Mutation(
        "limit-fill-in-bar",
        "engine/nb.py",
        "hit = lo <= level if d > 0 else hi >= level",
        "hit = lo < level if d > 0 else hi >= level",
        KERNEL_TESTS,
    ),
    Mutation(
        "limit-fill-at-open",
        "engine/nb.py",
        "hit = o <= level if d > 0 else o >= level",
        "hit = o < level if d > 0 else o >= level",
        KERNEL_TESTS,
    ),
    Mutation(
        "stop-entry-in-bar",
        "engine/nb.py",
        "hit = hi >= level if d > 0 else lo <= level",
        "hit = hi > level if d > 0 else lo <= level",
        KERNEL_TESTS,
    ),
    Mutation(
        "order-ttl-on-a-quiet-bar",
        "engine/nb.py",
        "if pdir != 0:\n"
        "                        ist[j, I_P_AGE] += 1\n"
        "                        if ttl > 0 and ist[j, I_P_AGE] >= ttl:",
        "if pdir != 0:\n"
        "                        ist[j, I_P_AGE] += 1\n"
        "                        if ttl > 0 and ist[j, I_P_AGE] > ttl:",
        KERNEL_TESTS,
    ),
    Mutation(
        "order-ttl",
        "engine/nb.py",
        "elif ist[j, I_P_DIR] != 0:\n"
        "                    ist[j, I_P_AGE] += 1\n"
        "                    if ttl > 0 and ist[j, I_P_AGE] >= ttl:",
        "elif ist[j, I_P_DIR] != 0:\n"
        "                    ist[j, I_P_AGE] += 1\n"
        "                    if ttl > 0 and ist[j, I_P_AGE] > ttl:",
        KERNEL_TESTS,
    ),
    # ---- engine kernel: ruin and trailing stop
    Mutation(
        "ruin-eq",
        "engine/nb.py",
        "# open at this close and stop trading\n        if eq <= 0.0:",
        "# open at this close and stop trading\n        if eq < 0.0:",
        KERNEL_TESTS,
    ),
    Mutation(
        "ruin-eq-on-a-calm-bar",
        "engine/nb.py",
        "eq = cash + p * mark if p != 0.0 else cash\n                    if eq <= 0.0:",
        "eq = cash + p * mark if p != 0.0 else cash\n                    if eq < 0.0:",
        KERNEL_TESTS,
    ),
    Mutation(
        "trail-fresh-position-uses-bar-high",
        "engine/nb.py",
        "best = close_ if fresh else hi",
        "best = hi",
        KERNEL_TESTS,
    ),
    # ---- candle validation
    Mutation(
        "schema-high-equal-to-body",
        "datasets/schema.py",
        'masks["high_below_body"] = (h < np.maximum(o, c)) | (h < lo)',
        'masks["high_below_body"] = (h <= np.maximum(o, c)) | (h < lo)',
        SCHEMA_TESTS,
    ),
    Mutation(
        "schema-low-equal-to-body",
        "datasets/schema.py",
        'masks["low_above_body"] = lo > np.minimum(o, c)',
        'masks["low_above_body"] = lo >= np.minimum(o, c)',
        SCHEMA_TESTS,
    ),
    Mutation(
        "schema-zero-price",
        "datasets/schema.py",
        'masks["non_positive_price"] = (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0)',
        'masks["non_positive_price"] = (o < 0) | (h <= 0) | (lo <= 0) | (c <= 0)',
        SCHEMA_TESTS,
    ),
    # ---- metrics
    Mutation(
        "win-rate-counts-flat-trades",
        "engine/metrics.py",
        "wins, losses = pnl[pnl > 0], pnl[pnl < 0]",
        "wins, losses = pnl[pnl >= 0], pnl[pnl < 0]",
        METRICS_TESTS,
    ),
    Mutation(
        "drawdown-ignores-initial-cash",
        "engine/metrics.py",
        "wealth = np.concatenate([[1.0], np.cumprod(1.0 + r.to_numpy())])",
        "wealth = np.cumprod(1.0 + r.to_numpy())",
        METRICS_TESTS,
    ),
    Mutation(
        "bar-drawdown-ignores-initial-cash",
        "engine/metrics.py",
        "v = np.concatenate([[float(initial)], v])",
        "v = v",
        METRICS_TESTS,
    ),
    # ---- derived timeframes and as-of alignment
    Mutation(
        "resample-drops-closed-last-bucket-duckdb",
        "datasets/resample.py",
        'if t.size and int(cols["last_open"][-1]) + b_ms < int(t[-1]) + tf_ms:',
        'if t.size and int(cols["last_open"][-1]) + b_ms <= int(t[-1]) + tf_ms:',
        RESAMPLE_TESTS,
    ),
    Mutation(
        "resample-drops-closed-last-bucket-numpy",
        "datasets/resample.py",
        'if int(t[-1]) + b_ms < int(out["time"][-1]) + tf_ms:',
        'if int(t[-1]) + b_ms <= int(out["time"][-1]) + tf_ms:',
        RESAMPLE_TESTS,
    ),
    Mutation(
        "asof-hides-candle-closing-at-the-bar-close",
        "datasets/align.py",
        'np.searchsorted(other_close_time, base_close_time, side="right")',
        'np.searchsorted(other_close_time, base_close_time, side="left")',
        ASOF_TESTS,
    ),
    # ---- look-ahead checker and live windows
    Mutation(
        "lookahead-no-row-before-boundary",
        "strategies/lookahead.py",
        "rows = np.unique(np.concatenate([rows, rows - 1]))",
        "rows = np.unique(rows)",
        LOOKAHEAD_TESTS,
    ),
    Mutation(
        "lookahead-window-drops-first-informative-candle",
        "strategies/lookahead.py",
        'first = np.minimum(np.searchsorted(b.close_time, start_open, side="left"), stop)',
        'first = np.minimum(np.searchsorted(b.close_time, start_open, side="right"), stop)',
        LOOKAHEAD_TESTS,
    ),
    Mutation(
        "lookahead-exhaustive-skips-rows",
        "strategies/lookahead.py",
        "rows = np.arange(strategy.warmup, bars.n, dtype=np.int64)",
        "rows = np.arange(strategy.warmup, bars.n, 2, dtype=np.int64)",
        LOOKAHEAD_TESTS,
    ),
    Mutation(
        "trailing-window-start",
        "strategies/base.py",
        'first = int(np.searchsorted(b.close_time, start_open, side="left"))',
        'first = int(np.searchsorted(b.close_time, start_open, side="right"))',
        (*LOOKAHEAD_TESTS, "tests/test_strategies*.py"),
    ),
)


class SetupError(Exception):
    """The project copy or a mutation's anchor is not as expected."""


def tracked_files(root: Path) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True
    ).stdout.decode()
    return [p for p in out.split("\0") if p]


def copy_project(root: Path, dest: Path) -> None:
    for rel in tracked_files(root):
        src = root / rel
        if not src.is_file():  # deleted in the work tree but still tracked
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def check_anchors(root: Path, mutations: list[Mutation]) -> None:
    """Raise SetupError naming every mutation whose anchor is missing or not unique."""
    problems = []
    for mu in mutations:
        path = root / mu.file
        if not path.is_file():
            problems.append(f"{mu.name}: file {mu.file} does not exist")
            continue
        count = path.read_text(encoding="utf-8").count(mu.old)
        if count != 1:
            what = "not found" if count == 0 else f"found {count} times (must be unique)"
            problems.append(f"{mu.name}: anchor {mu.old!r} {what} in {mu.file}")
        for pattern in mu.tests:
            if not glob.glob(str(root / pattern)):
                problems.append(f"{mu.name}: no test file matches {pattern}")
    if problems:
        raise SetupError(
            "the code has moved; update the mutation list in benchmarks/mutation_check.py:\n  "
            + "\n  ".join(problems)
        )


def run_tests(work: Path, patterns: tuple[str, ...], env: dict[str, str]) -> tuple[bool, str]:
    files = sorted({os.path.relpath(f, work) for p in patterns for f in glob.glob(str(work / p))})
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *files],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    tail = (proc.stdout.strip().splitlines() or [""])[-1]
    return proc.returncode == 0, tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="run only these mutations (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="first run every test file once unmutated (they must pass)",
    )
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(f"{mu.name:48} {mu.file}" for mu in MUTATIONS))
        return 0
    known = {m.name: m for m in MUTATIONS}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        print(f"error: unknown mutation(s) {', '.join(unknown)}; see --list", file=sys.stderr)
        return 2
    chosen = [known[n] for n in args.names] if args.names else list(MUTATIONS)
    try:
        check_anchors(ROOT, chosen)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="gogo2-mutation-") as tmp:
        work = Path(tmp) / "project"
        copy_project(ROOT, work)
        env = dict(os.environ)
        env["NUMBA_CACHE_DIR"] = str(Path(tmp) / "numba-cache")
        env["PYTHONPATH"] = str(work)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        if args.baseline:
            patterns = tuple(sorted({p for mu in chosen for p in mu.tests}))
            ok, tail = run_tests(work, patterns, env)
            print(f"baseline (unmutated): {'pass' if ok else 'FAIL'}  {tail}")
            if not ok:
                print("error: the tests fail without any mutation; fix them first", file=sys.stderr)
                return 2
        rows = []
        for mu in chosen:
            path = work / mu.file
            original = path.read_text(encoding="utf-8")
            if original.count(mu.old) != 1:  # pragma: no cover - checked above
                print(f"error: anchor of {mu.name} vanished from the copy", file=sys.stderr)
                return 2
            path.write_text(original.replace(mu.old, mu.new), encoding="utf-8")
            t0 = time.perf_counter()
            try:
                passed, tail = run_tests(work, mu.tests, env)
            finally:
                path.write_text(original, encoding="utf-8")
            verdict = "SURVIVED" if passed else "caught"
            rows.append((mu.name, mu.file, verdict, time.perf_counter() - t0, tail))
            print(f"{verdict:9} {mu.name} ({mu.file}, {rows[-1][3]:.0f} s)", flush=True)

    width = max(len(r[0]) for r in rows)
    fwidth = max(len(r[1]) for r in rows)
    print()
    print(f"{'mutation':{width}}  {'file':{fwidth}}  result")
    print(f"{'-' * width}  {'-' * fwidth}  --------")
    for name, file, verdict, _, _ in rows:
        print(f"{name:{width}}  {file:{fwidth}}  {verdict}")
    survived = [r for r in rows if r[2] == "SURVIVED"]
    print(
        f"\n{len(rows) - len(survived)} of {len(rows)} mutations caught, {len(survived)} survived"
    )
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
