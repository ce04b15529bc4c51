from __future__ import annotations

import math

import pytest

from autowarm.probe._score import score


def test_score_is_the_mean_of_the_last_15_percent_ignoring_nan() -> None:
    losses = [5.0] * 85 + [1.0] * 14 + [math.nan]
    assert score(losses, 100) == pytest.approx(1.0)
