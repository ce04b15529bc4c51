from __future__ import annotations

import math

import numpy as np
import pytest

from autowarm.probe._surface import minimum


def _landscape(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    # an optimum at log LR = log(0.01), warmup 10%; steeper on the hot side than on the cold
    d = x - math.log(0.01)
    return 1.0 + 0.05 * d**2 + 0.04 * np.where(d > 0, d, 0) ** 3 + 1.0 * (w - 0.1) ** 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_fit_finds_the_vertex_where_the_weighted_mean_is_pulled_cold(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # more trials on the flat cold side, as a sampler exploring a wide range leaves them
    x = np.concatenate([rng.uniform(math.log(1e-4), math.log(0.01), 16),
                        rng.uniform(math.log(0.01), math.log(0.05), 6)])  # fmt: skip
    w = rng.uniform(0, 0.5, x.size)
    y = _landscape(x, w) + rng.normal(0, 0.002, x.size)
    weights = np.exp(-(y - y.min()) / (0.1 * y.min()))
    box = ((float(x.min()), float(x.max())), (0.0, 0.5))
    found = minimum(x, w, y, weights, box)
    assert found is not None
    lr, warmup = math.exp(found[0]), found[1]
    centre = math.exp(float(np.sum(weights * x) / weights.sum()))
    assert 0.006 < lr < 0.016  # within 1.6x of the optimum
    # the soft-tie centre sits on the cold side, further from the optimum
    assert centre < lr and abs(math.log(lr / 0.01)) < abs(math.log(centre / 0.01))
    assert abs(warmup - 0.1) < 0.12


def test_the_minimum_stays_inside_the_box() -> None:
    x = np.linspace(math.log(1e-4), math.log(1e-1), 12)
    w = np.tile([0.0, 0.25, 0.5], 4)
    y = -x  # falls without end towards hotter LRs: no vertex inside
    box = ((math.log(1e-3), math.log(1e-2)), (0.0, 0.5))
    found = minimum(x, w, y, np.ones_like(x), box)
    assert found is not None
    assert found[0] == math.log(1e-2)


def test_too_few_trials_to_fit_gives_none() -> None:
    x = np.log([1e-3, 1e-2, 3e-2])
    assert minimum(x, [0, 0, 0], [1.0, 0.9, 1.1], [1, 1, 1], ((x[0], x[-1]), (0, 0))) is None
