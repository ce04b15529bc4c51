"""Storage cost per probe trial: SQLite vs PostgreSQL vs a journal file.

Runs ``--trials`` trials of an in-process synthetic runner (tests/probe/probe_fakes.py: no
process, no training) through the real ProbeSearch on each storage, and times every call the
search (and its sampler) makes into the storage; prints the wall time per trial spent there.

    python scripts/bench_storage.py --trials 50 --postgres postgresql://postgres@127.0.0.1:5433/autowarm

Without ``--postgres`` (or AUTOWARM_TEST_POSTGRES) the PostgreSQL row is left out.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "probe"))
from probe_fakes import FakeRunner

from autowarm.probe._config import ProbeConfig
from autowarm.probe._samplers import SAMPLERS
from autowarm.probe._search import ProbeSearch
from autowarm.probe._storage import open_storage


class Timer:
    """Wraps every public method of a storage object and sums the seconds spent in them."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def wrap(self, storage: Any) -> None:
        for name in dir(storage):
            method = getattr(storage, name)
            if name.startswith("_") or not callable(method):
                continue
            setattr(storage, name, self._timed(method))

    def _timed(self, method: Any) -> Any:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1

        return timed


def bench(url: str, trials: int) -> tuple[float, float, int]:
    """(storage ms per trial, wall ms per trial, storage calls per trial) on ``url``."""
    storage, _ = open_storage(url)
    cfg = ProbeConfig("x.py", steps=50, trials=trials, seed=0)
    study = optuna.create_study(
        study_name=f"bench-{uuid.uuid4().hex[:8]}",
        storage=storage,
        sampler=SAMPLERS[cfg.sampler](cfg.seed, cfg.trials),
    )
    timer = Timer()
    timer.wrap(study._storage)
    t0 = time.perf_counter()
    ProbeSearch(FakeRunner(), study, cfg).run()
    wall = time.perf_counter() - t0
    return 1e3 * timer.seconds / trials, 1e3 * wall / trials, timer.calls // trials


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--postgres", default=os.environ.get("AUTOWARM_TEST_POSTGRES"))
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite:///{tmp}/bench.db", "journal": f"journal://{tmp}/bench.log"}
        if args.postgres:
            urls["postgresql"] = args.postgres
        print(f"{args.trials} trials of 50 steps each, in-process runner, TPE sampler")
        print(f"{'storage':<12} {'storage ms/trial':>17} {'wall ms/trial':>14} {'calls/trial':>12}")
        for name, url in urls.items():
            storage_ms, wall_ms, calls = bench(url, args.trials)
            print(f"{name:<12} {storage_ms:>17.1f} {wall_ms:>14.1f} {calls:>12}")


if __name__ == "__main__":
    main()
