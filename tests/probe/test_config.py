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
        ({"margin": 0.5}, "--margin must be >= 1 but got 0.5."),
    ],
)
def test_validate(kwargs: dict, message: str) -> None:
    with pytest.raises(AutowarmError) as e:
        validate(ProbeConfig("x.py", **kwargs))
    assert message in str(e.value)
