from __future__ import annotations

from autowarm.probe._pruner import CohortPruner
from autowarm.probe._record import TrialRecord


def test_cohort_pruner_compares_only_similar_warmups_after_their_warmup() -> None:
    p = CohortPruner(steps=100)  # checkpoint at step 60
    done = [
        TrialRecord(i, 0.01, 5, "stable", score=1.0, checkpoint_loss=1.0 + 0.01 * i)
        for i in range(6)
    ]
    behind = [2.0] * 60
    assert p.should_prune(5, behind, done)  # far behind runs with the same warmup
    assert not p.should_prune(50, behind, done)  # a long warmup is not compared with short ones
    assert not p.should_prune(70, behind, done)  # still warming up at the checkpoint
    assert not p.should_prune(5, [1.0] * 60, done)
