"""Where the chunks of a sweep run: numba threads in this process, or Ray tasks.

``local``: chunks run one after the other; inside a chunk the kernel runs the
combinations in parallel on ``--jobs`` numba threads (``nogil``, ``prange``), and the
indicators are shared by every chunk (computed once per distinct parameter value).

``ray``: the market data goes once into Ray's object store (numpy arrays are read
zero-copy by the workers) and each chunk of combinations is one Ray task. Without
``--ray-address`` a local Ray starts with ``--jobs`` CPUs; with it the tasks go to an
existing cluster. The results are the same numbers as the local executor's: each
combination is the same deterministic kernel run on the same arrays.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from gogo2.errors import UserInputError

RAY_INSTALL = 'pip install -e ".[ray]"'


class MissingExtraError(UserInputError):
    """An optional dependency the chosen option needs is not installed."""


def require_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise MissingExtraError(
            f"--executor ray needs Ray, which is not installed. Install it with {RAY_INSTALL} "
            "(or pip install ray), or use --executor local."
        ) from None


def require_optuna() -> None:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise MissingExtraError(
            "--search optuna needs optuna, which is not installed: pip install optuna "
            "(it is a dependency of gogo2; reinstall with pip install -e .)."
        ) from None


class LocalExecutor:
    def __init__(self, data: Any, jobs: int | None) -> None:
        import numba

        self.data = data
        self.workers = int(jobs or numba.config.NUMBA_NUM_THREADS)
        self.workers = max(1, min(self.workers, numba.config.NUMBA_NUM_THREADS))
        self._memo: dict = {}  # indicators shared by every chunk and call on this data

    def run(
        self, combos: list[dict[str, Any]], progress: Callable[[int, int], None] | None = None
    ) -> list:
        import numba

        from datasets.indicators import memoized
        from runner.engine_many import chunk_size, run_chunk

        n, m = self.data.ohlc[0].shape
        out = []
        before = numba.get_num_threads()
        numba.set_num_threads(self.workers)
        try:
            with memoized(self._memo):
                size = max(self.workers, chunk_size(n, m, _fields_hint(self.data, combos)))
                for a in range(0, len(combos), size):
                    out.append(run_chunk(self.data, combos[a : a + size], self.workers))
                    if progress is not None:
                        progress(min(a + size, len(combos)), len(combos))
        finally:
            numba.set_num_threads(before)
        return out

    def set_data(self, data: Any) -> None:
        self.data = data
        self._memo = {}

    def close(self) -> None:
        self._memo = {}


def _fields_hint(data: Any, combos: list[dict[str, Any]]) -> int:
    """How many (n, m) arrays one combination's signals hold (entries, exits + optional)."""
    if not combos:
        return 2
    from strategies.registry import get

    strat = get(data.strategy)(timeframe=data.timeframe, **combos[0])
    sig = strat.signals(data.multibars)
    names = ("order_type", "price", "size", "sl", "tp", "trail")
    return 2 + sum(getattr(sig, f) is not None for f in names)


class _RayWorker:
    """One per CPU: holds the data reference and an indicator memo across its chunks, so
    each worker computes each distinct indicator once."""

    def __init__(self) -> None:
        self.memo: dict = {}
        self.data: Any = None

    def load(self, data: Any) -> None:
        self.data = data
        self.memo = {}

    def run(self, combos: list[dict[str, Any]]) -> Any:
        import numba

        from datasets.indicators import memoized
        from runner.engine_many import run_chunk

        numba.set_num_threads(1)  # one CPU per worker: parallelism comes from the workers
        with memoized(self.memo):
            return run_chunk(self.data, combos)


class RayExecutor:
    def __init__(self, data: Any, jobs: int | None, address: str | None) -> None:
        require_ray()
        import ray

        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            root = _project_root()
            if address:
                # a cluster's workers need the project on their path: ship the root's path
                # (the cluster's nodes must hold the same checkout there, or install gogo2)
                env = {"env_vars": {"PYTHONPATH": root}}
                _start(
                    ray,
                    f"the Ray cluster at --ray-address {address}",
                    address=address,
                    runtime_env=env,
                    log_to_driver=False,
                )
            else:
                # a local Ray's workers inherit this environment
                paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
                os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
                _start(
                    ray,
                    "a local Ray",
                    num_cpus=int(jobs or 2),
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            self.started = True
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor = ray.remote(num_cpus=1)(_RayWorker)
        self.actors = [actor.remote() for _ in range(self.workers)]
        if data is not None:
            self.set_data(data)

    def set_data(self, data: Any) -> None:
        """Put a data set (the sweep's, or a walk-forward window's) into the object store
        once; every worker reads it from there."""
        ref = self.ray.put(data)
        self.ray.get([a.load.remote(ref) for a in self.actors])
        self.shape = data.ohlc[0].shape

    def run(
        self, combos: list[dict[str, Any]], progress: Callable[[int, int], None] | None = None
    ) -> list:
        ray = self.ray
        # small chunks keep every CPU busy; each task recomputes its own indicators
        size = max(1, -(-len(combos) // (4 * self.workers)))
        from runner.engine_many import chunk_size

        size = min(size, chunk_size(*self.shape))
        refs = [
            self.actors[i % len(self.actors)].run.remote(combos[a : a + size])
            for i, a in enumerate(range(0, len(combos), size))
        ]
        out = []
        done = 0
        for ref in refs:  # in submission order, so the result order is the grid's
            res = ray.get(ref)
            out.append(res)
            done += res.daily.shape[0]
            if progress is not None:
                progress(done, len(combos))
        return out

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        if self.started:
            self.ray.shutdown()


class RayStartError(UserInputError):
    """Ray could not be started or reached."""


def _start(ray: Any, what: str, **kwargs: Any) -> None:
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, TimeoutError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RayStartError(
            f"could not start or reach {what}: {first}. Check the address (ray status on the "
            "head node prints it) or run with --executor local."
        ) from None


def _project_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_executor(kind: str, data: Any, *, jobs: int | None, address: str | None) -> Any:
    if kind == "ray":
        return RayExecutor(data, jobs, address)
    return LocalExecutor(data, jobs)
