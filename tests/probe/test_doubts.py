from __future__ import annotations

import pytest

from autowarm.probe._config import (
    HORIZON_EXPONENT,
    HORIZON_EXPONENT_FRESH,
    HORIZON_EXPONENT_NOISY,
)
from autowarm.probe._doubts import doubts
from autowarm.probe._recommend import recommend
from autowarm.probe._record import TrialRecord

RANGE = (1e-4, 5e-2)  # the default range around a script LR of 1e-3


def rec(n: int, lr: float, w: int, status: str = "stable", score: float | None = None):
    if score is None and status in ("stable", "spike"):
        score = 1.0
    return TrialRecord(number=n, peak_lr=lr, warmup_steps=w, status=status, score=score)


def kinds(records: list[TrialRecord], warmup_max: int = 50) -> list[str]:
    recipe = recommend(records, probe_steps=100, total_steps=1000, decay="cosine")
    found = doubts(records, recipe.evidence, lr_range=RANGE, warmup_max=warmup_max)
    for d in found:  # every doubt says what it is and what to pass
        assert d["text"] and d["fix"].strip()
    return [d["kind"] for d in found]


def _spread(score_at: dict[float, float], w: int = 20) -> list[TrialRecord]:
    return [rec(i, lr, w, score=s) for i, (lr, s) in enumerate(score_at.items())]


def test_a_best_trial_at_the_top_of_the_range_with_nothing_unstable_says_so() -> None:
    records = _spread({3e-4: 1.6, 1e-3: 1.3, 4e-3: 1.1, 1.5e-2: 1.0, 4.5e-2: 0.8})
    found = kinds(records)
    assert "lr_top" in found and "no_instability" in found
    recipe = recommend(records, probe_steps=100, total_steps=1000, decay="cosine")
    top = next(d for d in doubts(records, recipe.evidence, lr_range=RANGE, warmup_max=50)
               if d["kind"] == "lr_top")  # fmt: skip
    assert top["fix"] == "--lr-range 0.0001 0.5"


def test_an_unstable_trial_above_the_best_is_the_edge_found() -> None:
    records = _spread({3e-4: 1.6, 1e-3: 1.3, 4e-3: 1.1, 1.5e-2: 1.0, 4.5e-2: 0.8})
    records.append(rec(9, 4.9e-2, 20, "diverged"))
    found = kinds(records)
    assert "lr_top" not in found and "no_instability" not in found


def test_a_best_trial_at_the_bottom_of_the_range_says_so() -> None:
    records = _spread({1.1e-4: 0.8, 1e-3: 1.0, 4e-3: 1.2, 1.5e-2: 1.5})
    records.append(rec(9, 4e-2, 20, "diverged"))
    assert kinds(records) == ["lr_bottom", "few_near_best"]


def test_a_best_trial_inside_the_range_with_many_near_best_and_an_edge_is_sure() -> None:
    records = [
        rec(i, lr, w, score=1.0 + 0.01 * i)
        for i, (lr, w) in enumerate([(2e-3, 10), (3e-3, 20), (4e-3, 5), (5e-3, 30)])
    ]
    records.append(rec(9, 3e-2, 30, "diverged"))  # fmt: skip
    assert kinds(records) == []


def test_every_near_best_trial_at_the_warmup_cap_says_so() -> None:
    records = [rec(i, lr, 48, score=1.0 + 0.01 * i) for i, lr in enumerate([2e-3, 3e-3, 4e-3])]
    records += [rec(5, 3e-3, 5, score=1.5), rec(9, 3e-2, 50, "diverged")]
    assert kinds(records) == ["warmup_cap"]
    # the recipe keeps its 10 %; the line says so and what to compare in full runs
    recipe = recommend(records, probe_steps=100, total_steps=1000, decay="cosine")
    (cap,) = doubts(records, recipe.evidence, lr_range=RANGE, warmup_max=50)
    assert recipe.warmup_steps == 100
    assert "(50 probe steps, 50% of the probe) while the recipe's is 10%" in cap["text"]
    assert cap["fix"] == "compare full runs at the recipe's warmup and at 50% of the run"


def test_no_edge_with_the_hot_side_explored_asks_for_longer_probes_not_higher_lrs() -> None:
    # Lightning's Transformer example: trials at 49x the best LR ran worse, none unstable;
    # a wider range upwards would add more of them
    records = _spread({3e-3: 1.2, 1e-2: 1.0, 3e-2: 1.1, 0.1: 1.6, 0.3: 2.5})
    recipe = recommend(records, probe_steps=100, total_steps=1000, decay="cosine")
    found = doubts(records, recipe.evidence, lr_range=(1e-3, 1.0), warmup_max=50)
    doubt = next(d for d in found if d["kind"] == "no_instability")
    assert "trials up to LR 0.3 ran worse or were pruned, but stayed stable" in doubt["text"]
    assert doubt["fix"] == "--steps 200: longer probes rank LRs closer to the full run"
    # below 4x the best LR the hot side is not explored: look higher up
    near = _spread({3e-3: 1.2, 1e-2: 1.0, 3e-2: 1.1})
    recipe = recommend(near, probe_steps=100, total_steps=1000, decay="cosine")
    found = doubts(near, recipe.evidence, lr_range=(1e-3, 1.0), warmup_max=50)
    doubt = next(d for d in found if d["kind"] == "no_instability")
    assert doubt["fix"] == "a wider --lr-range upwards"


def test_a_cold_stall_is_not_an_instability() -> None:
    records = _spread({2e-3: 1.0, 3e-3: 1.01, 4e-3: 1.02})
    records.append(rec(9, 2e-4, 20, "stalled"))  # too cold to learn: below the best LR
    assert kinds(records) == ["no_instability"]


def test_the_report_prints_each_doubt_with_its_fix() -> None:
    import io

    from rich.console import Console

    from autowarm.probe._report import recommendation

    records = _spread({3e-4: 1.6, 1e-3: 1.3, 4e-3: 1.1, 1.5e-2: 1.0, 4.5e-2: 0.8})
    recipe = recommend(records, probe_steps=100, total_steps=1000, decay="cosine")
    recipe.evidence["doubts"] = doubts(records, recipe.evidence, lr_range=RANGE, warmup_max=50)
    console = Console(file=io.StringIO(), width=200)
    console.print(recommendation(recipe))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "unsure" in text and "at the top of the range" in text
    assert "(try --lr-range 0.0001 0.5)" in text


def test_better_trials_held_back_by_the_margin_say_so_and_name_the_margin_that_admits_them() -> (
    None
):
    # a cliff at 1e-2 (warmup 20): the two best trials sit within 2x below it, so the pick is
    # made from the colder ones
    records = _spread({1e-3: 1.6, 2e-3: 1.3, 4e-3: 1.1, 6e-3: 0.9, 8e-3: 0.8})
    records.append(rec(9, 1e-2, 20, "diverged"))
    recipe = recommend(records, probe_steps=100, total_steps=1000, decay="cosine")
    assert recipe.evidence["best_peak_lr"] == 4e-3  # the best the 2x margin allows
    found = doubts(records, recipe.evidence, lr_range=RANGE, warmup_max=50)
    held = next(d for d in found if d["kind"] == "held_by_margin")
    assert held["text"].startswith("2 trials scored better than the pick allows (best: LR 0.008")
    assert "(0.01)" in held["text"]
    assert held["fix"] == "--margin 1.25: a full run there may diverge"  # 1e-2 / 8e-3


def test_no_held_back_trial_without_a_better_one_beyond_the_margin() -> None:
    records = _spread({1e-3: 1.6, 2e-3: 1.3, 4e-3: 0.8, 6e-3: 0.9})
    records.append(rec(9, 1e-2, 20, "diverged"))
    assert "held_by_margin" not in kinds(records)


def test_near_best_trials_spread_over_decades_of_lr_say_the_probes_do_not_rank() -> None:
    # scores within 1 % of each other from 1.5e-4 to 2e-2: a probe too short to tell LRs apart
    records = _spread({1.5e-4: 1.00, 1e-3: 1.01, 5e-3: 1.00, 2e-2: 1.01})
    records.append(rec(9, 4.9e-2, 20, "diverged"))
    found = kinds(records)
    assert "flat_ranking" in found
    recipe = recommend(records, probe_steps=100, total_steps=1000, decay="cosine")
    flat = next(d for d in doubts(records, recipe.evidence, lr_range=RANGE, warmup_max=50)
                if d["kind"] == "flat_ranking")  # fmt: skip
    assert flat["fix"].startswith("--steps 200")
    assert "133x" in flat["text"]  # 2e-2 / 1.5e-4


def test_near_best_trials_within_two_decades_are_a_ranking() -> None:
    records = _spread({2e-4: 1.5, 1e-3: 1.01, 5e-3: 1.00, 2e-2: 1.01, 4e-2: 1.3})
    records.append(rec(9, 4.9e-2, 20, "diverged"))
    assert "flat_ranking" not in kinds(records)


def test_a_noisy_training_loss_says_the_full_run_may_overfit_and_names_score_with() -> None:
    # the near-best trials' losses are 0.1-0.12 with a noise of 20 % of that: a model fitting
    # most of its batches; the same search with a quiet loss (2 %) raises no such doubt
    scores = {1e-3: 0.3, 3e-3: 0.12, 6e-3: 0.1, 1e-2: 0.11, 2e-2: 0.3}
    for relative, expected in ((0.2, True), (0.02, False)):
        records = [*_noisy(scores, relative), rec(9, 4.9e-2, 20, "diverged")]
        assert ("noisy_loss" in kinds(records)) is expected
    records = _noisy(scores, 0.2)
    recipe = recommend(records, probe_steps=100, total_steps=1000, decay="cosine")
    found = doubts(records, recipe.evidence, lr_range=RANGE, warmup_max=50)
    noisy = next(d for d in found if d["kind"] == "noisy_loss")
    assert "(20% of it)" in noisy["text"] and "autowarm.score_with" in noisy["fix"]
    # the noise rule's cut set this LR: the text says how much, and when it is too much
    assert recipe.evidence["horizon_exponent"] == HORIZON_EXPONENT_NOISY
    assert f"({recipe.evidence['horizon_factor']:.2g}x for the longer run)" in noisy["text"]
    assert "pass --epochs" in noisy["text"]  # the passes unknown: the user can say them
    # a trainer's callback told the data's size: the full run's passes judge the cut
    data = {"train_examples": 3000, "examples_per_step": 16}
    for passes, too_far in ((2.7, True), (43.0, False)):
        told = {**recipe.evidence, "script_data": data, "data_passes": passes}
        noisy = next(d for d in doubts(records, told, lr_range=RANGE, warmup_max=50)
                     if d["kind"] == "noisy_loss")  # fmt: skip
        assert f"{passes:.3g} passes over its 3,000 training examples" in noisy["text"]
        assert ("--horizon-exponent" in noisy["text"]) is too_far
    # a stability edge set the LR instead: no word about a cut
    edged = {**recipe.evidence, "horizon_exponent": 0.05}
    noisy = next(d for d in doubts(records, edged, lr_range=RANGE, warmup_max=50)
                 if d["kind"] == "noisy_loss")  # fmt: skip
    assert "--horizon-exponent" not in noisy["text"]
    # under the HF Trainer the callback scores on its eval set: the fix says how
    hf = {**recipe.evidence, "script_trainer": "hf"}
    noisy = next(d for d in doubts(records, hf, lr_range=RANGE, warmup_max=50)
                 if d["kind"] == "noisy_loss")  # fmt: skip
    assert "eval_dataset" in noisy["fix"] and "score_with" not in noisy["fix"]
    pl = {**recipe.evidence, "script_trainer": "lightning"}
    noisy = next(d for d in doubts(records, pl, lr_range=RANGE, warmup_max=50)
                 if d["kind"] == "noisy_loss")  # fmt: skip
    assert "validation_step" in noisy["fix"]
    # already scored on held-out data (score_with, or a callback's eval set): nothing to fix
    scored = {**recipe.evidence, "scored_by": "score_with"}
    assert "noisy_loss" not in [d["kind"] for d in doubts(records, scored, lr_range=RANGE,
                                                          warmup_max=50)]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "passes", "cut"),
    [(True, None, True), (True, 2.7, False), (True, 43.0, True), (False, 2.7, True)],
)
def test_the_noise_rule_cuts_the_lr_only_where_the_full_run_can_memorise_its_data(
    monkeypatch: pytest.MonkeyPatch, rule: bool, passes: float | None, cut: bool
) -> None:
    from autowarm.probe import _recommend

    monkeypatch.setattr(_recommend, "PASSES_RULE", rule)
    records = _noisy({1e-3: 0.3, 3e-3: 0.12, 6e-3: 0.1, 1e-2: 0.11, 2e-2: 0.3}, 0.2)
    data = {"train_examples": 3000, "examples_per_step": 16} if passes else None
    told = {"script_data": data, "data_passes": passes}
    recipe = recommend(
        records, probe_steps=100, total_steps=1000, decay="cosine", extra_evidence=told
    )
    # left alone under 20 known passes, the LR keeps more of the probes' (FRESH_RULE)
    fresh = HORIZON_EXPONENT_FRESH if passes is not None and passes < 20 else HORIZON_EXPONENT
    assert recipe.evidence["horizon_exponent"] == (HORIZON_EXPONENT_NOISY if cut else fresh)
    noisy = next(d for d in doubts(records, recipe.evidence, lr_range=RANGE, warmup_max=50)
                 if d["kind"] == "noisy_loss")  # fmt: skip
    if not cut:  # the doubt says why the LR was left alone
        assert "not cut for it: the full run makes only 2.7 passes over its 3,000" in noisy["text"]
    elif passes is None:  # the user can tell the passes the loop does not show
        assert ("--epochs" in noisy["text"]) is rule


@pytest.mark.parametrize(
    ("rule", "passes", "exponent"),
    [(True, None, 0.3), (True, 2.7, 0.1), (True, 19.9, 0.1), (True, 43.0, 0.3), (False, 2.7, 0.3)],
)
def test_a_run_with_few_known_passes_keeps_more_of_the_probes_lr(
    monkeypatch: pytest.MonkeyPatch, rule: bool, passes: float | None, exponent: float
) -> None:
    # FRESH_RULE: a quiet loss, away from an edge; a model that sees each example a few times
    # cannot memorise it, so the full run's best LR falls less with its length
    from autowarm.probe import _recommend

    monkeypatch.setattr(_recommend, "FRESH_RULE", rule)
    records = _noisy({1e-3: 0.3, 3e-3: 0.12, 6e-3: 0.1, 1e-2: 0.11, 2e-2: 0.3}, 0.01)
    told = {"data_passes": passes}
    recipe = recommend(
        records, probe_steps=100, total_steps=1000, decay="cosine", extra_evidence=told
    )
    assert recipe.evidence["horizon_exponent"] == exponent
    probe_lr = recipe.evidence["probe_peak_lr"]
    assert recipe.peak_lr == pytest.approx(probe_lr * 0.1**exponent, rel=1e-3)


def _noisy(scores: dict[float, float], relative: float) -> list[TrialRecord]:
    return [
        TrialRecord(number=i, peak_lr=lr, warmup_steps=20, status="stable", score=s,
                    noise=relative * s)
        for i, (lr, s) in enumerate(scores.items())
    ]  # fmt: skip
