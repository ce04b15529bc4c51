"""The samplers ``--sampler`` picks from: name -> factory of ``(seed, trials)``; and the sampler
a resumed seeded search continues with (:func:`resumed_sampler`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # optuna loads in the factories: the CLI validates --sampler without it
    import optuna

# Measured with `python scripts/bench_probe.py --samplers --sampler-names tpe gp qmc
# --seeds 20 --trials 20`: 20 synthetic probe landscapes, the real ProbeSearch; regret vs the
# landscape's optimum of the best trial found (isolates the sampler); the sampler was chosen on
# that column. The recommendation's regret there (median) was 2.25% (TPE) with the earlier
# hard-tie rule and is 3.75% (TPE) / 5.57% (QMC) with the soft-tie rule: the synthetic
# landscape charges every long warmup a loss and has no horizon effect, exactly what the real
# recipes' full runs do not show (their regret fell with the soft-tie rule; see the README):
#   sampler             best-trial regret   sampler time per trial
#   tpe (multivariate)  0.69%               3 ms
#   gp                  0.47%               570 ms (2 busy cores)
#   qmc (Sobol)         0.70%               6 ms
# GP finds slightly better trials, but its per-trial time alone would use most of the 10%
# overhead budget for 5-s trials and it does not account for running trials under --jobs;
# multivariate TPE (constant liar for parallel trials) is the default, `--sampler gp` is there
# for long trials.


def _tpe(seed: int | None, n: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.TPESampler(
        seed=seed, multivariate=True, n_startup_trials=max(4, n // 4), constant_liar=True
    )


def _gp(seed: int | None, n: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=max(4, n // 4))


def _qmc(seed: int | None, n: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.QMCSampler(seed=seed, scramble=True)


SAMPLERS: dict[str, Callable[[int | None, int], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "gp": _gp,
    "qmc": _qmc,
}
#: the samplers that keep modelling the LR when the search widens its range mid-study
#: (probe/_widen.py): TPE fits each parameter over the trials that have it, in the new bounds;
#: Optuna's GPSampler samples a parameter whose range changed at random, and QMC keeps the
#: first trial's space -- with those the range stays, and the report's doubt says so
WIDENING = ("tpe",)


def resumed_seed(seed: int, stored: int) -> int:
    """The seed of a search resumed with ``stored`` trials in its study: a function of both, so
    the same command on the same study is reproducible and differs from every earlier run."""
    import numpy as np

    return int(np.random.SeedSequence([seed, stored]).generate_state(1)[0])


def resumed_sampler(
    name: str, seed: int | None, n: int, stored: int
) -> optuna.samplers.BaseSampler | None:
    """The sampler for a study resumed with ``stored`` trials; None to keep the study's own.

    A seeded sampler built afresh replays its random start-up from the first draw: it would
    propose the stored trials again (after a kill, trial #4 was #1 again). QMC needs nothing:
    the storage counts the points its (seeded) sequence gave, and it continues from there.
    """
    if seed is None or stored == 0 or name == "qmc":
        return None
    return SAMPLERS[name](resumed_seed(seed, stored), n)
