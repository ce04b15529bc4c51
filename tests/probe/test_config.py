from __future__ import annotations

import pytest

from autowarm import AutowarmError
from autowarm.probe._config import ProbeConfig, validate


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr_range": (1e-2, 1e-3)}, "--lr-range MIN must be < MAX but got 0.01 >= 0.001."),
        ({"lr_range": (0.0, 1e-3)}, "--lr-range must be positive"),
        ({"max_warmup": 300}, "--max-warmup must be < --steps but got 300 >= 100"),
        ({"trials": 0}, "--trials must be >= 1 but got 0."),
        ({"jobs": 0}, "--jobs must be >= 1 but got 0."),
        ({"sampler": "cma"}, "--sampler must be one of tpe, gp, qmc but got 'cma'."),
        ({"margin": 0.5}, "--margin must be in [1, 100] but got 0.5."),
        # case 17: an unbounded margin fails before the search, not after it (or silently)
        ({"margin": float("inf")}, "--margin must be in [1, 100] but got inf."),
        ({"margin": 1e308}, "--margin must be in [1, 100] but got 1e+308."),
        ({"margin": float("nan")}, "--margin must be in [1, 100] but got nan."),
        # case 16: an infinite LR bound is refused before anything starts
        ({"lr_range": (1e-4, float("inf"))}, "--lr-range must be positive finite numbers"),
        ({"lr_range": (-1e-3, 1e-1)}, "--lr-range must be positive finite numbers"),
        # case 19: a probe longer than the run it stands for
        ({"total_steps": 20, "steps": 30}, "--steps must be <= --total-steps but got 30 > 20"),
        ({"epochs": 0.0}, "--epochs must be a positive number but got 0; it is how many times"),
        ({"epochs": float("nan")}, "--epochs must be a positive number but got nan"),
    ],
)
def test_validate(kwargs: dict, message: str) -> None:
    with pytest.raises(AutowarmError) as e:
        validate(ProbeConfig("x.py", **kwargs))
    assert message in str(e.value)


def test_epochs_stated_for_one_run_length_scale_with_another() -> None:
    # autowarm show --total-steps: twice the run sees each example twice as often
    config = ProbeConfig("x.py", total_steps=1000, epochs=3.0)
    assert config.for_total_steps(4000).epochs == 12.0
    assert config.for_total_steps(4000).total_steps == 4000
    assert ProbeConfig.from_attrs(config.to_attrs()).epochs == 3.0  # the study keeps it
    # stated without a run length: taken as the longer run's
    assert ProbeConfig("x.py", epochs=3.0).for_total_steps(4000).epochs == 3.0
    assert ProbeConfig("x.py").for_total_steps(4000).epochs is None
