"""MonitoredOptimizer behaves exactly like the optimizer it wraps, with real torch optimizers,
schedulers, GradScaler, clipping, accumulation, checkpoints and pickling."""

from __future__ import annotations

import copy
import io
import math
import pickle
import warnings
from collections.abc import Callable

import pytest
import torch
from rich.console import Console

import autowarm
from autowarm import AutowarmError, InstabilityError
from autowarm.monitor import MonitoredOptimizer, wrap

OptFactory = Callable[[list], torch.optim.Optimizer]


def _fused_ok(cls: type[torch.optim.Optimizer]) -> bool:
    try:
        p = torch.nn.Parameter(torch.zeros(2))
        cls([p], lr=0.1, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


OPTIMIZERS: dict[str, OptFactory] = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.05),
    "sgd-momentum-foreach": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, foreach=True),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2),
    "adam-loop": lambda p: torch.optim.Adam(p, lr=1e-2, foreach=False),
    "adamw-foreach": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1, foreach=True),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-3),
}
FUSED: dict[str, OptFactory] = {
    "adam-fused": lambda p: torch.optim.Adam(p, lr=1e-2, fused=True),
    "adamw-fused": lambda p: torch.optim.AdamW(p, lr=1e-2, fused=True),
    "sgd-fused": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, fused=True),
}
for name, factory in FUSED.items():
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[
        name.split("-")[0]
    ]
    if _fused_ok(cls):
        OPTIMIZERS[name] = factory


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=80, color_system=None)


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(32, 6, generator=g)
    return x, x[:, :1] * 2 - x[:, 1:2]


def _train(
    opt: torch.optim.Optimizer,
    model: torch.nn.Module,
    steps: int,
    *,
    sched: torch.optim.lr_scheduler.LRScheduler | None = None,
    report: bool = True,
) -> list[float]:
    lrs = []
    for step in range(steps):
        x, y = _batch(step)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        if report and isinstance(opt, MonitoredOptimizer):
            opt.report(loss)
        opt.step()
        lrs.append(opt.param_groups[0]["lr"])
        if sched is not None:
            sched.step()
    return lrs


def _params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _assert_same(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def _backward_at_step_3(opt: torch.optim.Optimizer, model: torch.nn.Module) -> torch.Tensor:
    """Step 3's loss with its gradients computed (not yet applied): corrupt them, then step."""
    x, y = _batch(3)
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    return loss


def _assert_state_unchanged(opt: torch.optim.Optimizer, state_before: dict) -> None:
    """The optimizer state (moments, step counters) is bit for bit what it was."""
    after = opt.state_dict()
    for k, fields in state_before["state"].items():
        for field, value in fields.items():
            torch.testing.assert_close(after["state"][k][field], value, rtol=0, atol=0)


# -- transparency ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_wrapped_trains_exactly_like_bare(name: str) -> None:
    bare_model, wrapped_model = _model(), _model()
    bare = OPTIMIZERS[name](list(bare_model.parameters()))
    wrapped = wrap(OPTIMIZERS[name](list(wrapped_model.parameters())), console=_quiet())
    assert isinstance(wrapped, torch.optim.Optimizer)
    _train(bare, bare_model, 15)
    _train(wrapped, wrapped_model, 15)
    _assert_same(_params(bare_model), _params(wrapped_model))
    # same optimizer state, and the monitor saw every step
    sb, sw = bare.state_dict(), wrapped.state_dict()
    assert sb["param_groups"] == sw["param_groups"]
    for k in sb["state"]:
        for field, value in sb["state"][k].items():
            torch.testing.assert_close(value, sw["state"][k][field], rtol=0, atol=0)
    assert wrapped.monitor.step_count == 15
    assert [r.step for r in wrapped.monitor.history] == list(range(15))
    assert wrapped.monitor.events == []


SCHEDULERS: dict[str, Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]] = {
    "lambda": lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: min(1.0, (s + 1) / 5)),
    "onecycle": lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=20),
    "sequential": lambda o: torch.optim.lr_scheduler.SequentialLR(
        o,
        [
            torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=5),
            torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=15),
        ],
        milestones=[5],
    ),
}


@pytest.mark.parametrize("sched_name", sorted(SCHEDULERS))
def test_lr_schedulers(sched_name: str) -> None:
    bare_model, wrapped_model = _model(), _model()
    bare = torch.optim.SGD(bare_model.parameters(), lr=0.05, momentum=0.9)
    wrapped = wrap(
        torch.optim.SGD(wrapped_model.parameters(), lr=0.05, momentum=0.9), console=_quiet()
    )
    with warnings.catch_warnings():
        # e.g. "Detected call of lr_scheduler.step() before optimizer.step()" would be an error
        warnings.simplefilter("error")
        lrs_bare = _train(bare, bare_model, 20, sched=SCHEDULERS[sched_name](bare))
        lrs_wrapped = _train(wrapped, wrapped_model, 20, sched=SCHEDULERS[sched_name](wrapped))
    assert lrs_bare == lrs_wrapped
    assert len(set(lrs_wrapped)) > 3  # the schedule really moved the LR
    _assert_same(_params(bare_model), _params(wrapped_model))
    assert [r.lr for r in wrapped.monitor.history] == lrs_wrapped


def test_state_dict_round_trip_through_bare_optimizer() -> None:
    model = _model()
    wrapped = wrap(torch.optim.Adam(model.parameters(), lr=1e-2), console=_quiet())
    _train(wrapped, model, 5)
    saved = wrapped.state_dict()
    # 1) the checkpoint loads into a bare optimizer
    bare = torch.optim.Adam(model.parameters(), lr=1e-2)
    bare.load_state_dict(saved)
    assert bare.state_dict()["state"][0]["step"] == saved["state"][0]["step"] == 5
    # 2) and back into a fresh wrapper, which then continues exactly like the bare one
    rewrapped = wrap(torch.optim.Adam(model.parameters(), lr=1e-2), console=_quiet())
    rewrapped.load_state_dict(bare.state_dict())
    for k, v in bare.state_dict()["state"][0].items():
        torch.testing.assert_close(rewrapped.state_dict()["state"][0][k], v)
    assert rewrapped.state is rewrapped.optimizer.state


def test_forwarded_attributes_and_setters() -> None:
    model = _model()
    inner = torch.optim.SGD(model.parameters(), lr=0.1)
    opt = wrap(inner, console=_quiet())
    assert opt.param_groups is inner.param_groups
    assert opt.defaults is inner.defaults
    assert opt.optimizer is inner
    new_groups = list(inner.param_groups)
    opt.param_groups = new_groups
    assert inner.param_groups is new_groups
    opt.defaults = {**inner.defaults, "lr": 0.5}
    assert inner.defaults["lr"] == 0.5
    assert "MonitoredOptimizer(SGD" in repr(opt)


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none: bool) -> None:
    model = _model()
    opt = wrap(torch.optim.SGD(model.parameters(), lr=0.1), console=_quiet())
    x, y = _batch(0)
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.zero_grad(set_to_none=set_to_none)
    for p in model.parameters():
        if set_to_none:
            assert p.grad is None
        else:
            assert p.grad is not None and not p.grad.any()


def test_add_param_group_and_several_groups_and_params_without_grads() -> None:
    model = _model()
    frozen = torch.nn.Parameter(torch.ones(3))  # never gets a gradient
    opt = wrap(
        torch.optim.AdamW(
            [
                {"params": model[0].parameters(), "lr": 1e-2},
                {"params": [frozen], "lr": 1e-3},
            ]
        ),
        console=_quiet(),
    )
    opt.add_param_group({"params": model[2].parameters(), "lr": 5e-3})
    assert len(opt.optimizer.param_groups) == 3
    before = _params(model)
    _train(opt, model, 3)
    after = _params(model)
    assert all(not torch.equal(a, b) for a, b in zip(before, after))  # all 3 groups updated
    assert torch.equal(frozen, torch.ones(3))
    rec = opt.monitor.history[-1]
    assert rec.lr == 1e-2  # the first group's LR
    expected = torch.linalg.vector_norm(
        torch.stack([p.grad.norm() for p in model.parameters()])
    ).item()
    assert rec.grad_norm == pytest.approx(expected, rel=1e-5)


def test_step_without_any_gradient() -> None:
    p = torch.nn.Parameter(torch.ones(2))
    opt = wrap(torch.optim.SGD([p], lr=0.1), console=_quiet())
    opt.step()  # no backward at all: a no-op update, recorded with a zero norm
    assert opt.monitor.history[-1].grad_norm == 0.0
    assert opt.monitor.history[-1].loss is None
    assert opt.monitor.events == []


def test_pickling_with_scheduler_attached() -> None:
    model = _model()
    # a lambda callback and a console writing to StringIO cannot be pickled: they stay behind
    opt = wrap(
        torch.optim.Adam(model.parameters(), lr=1e-2), callback=lambda e: None, console=_quiet()
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5)
    _train(opt, model, 4, sched=sched)
    for clone in (pickle.loads(pickle.dumps(opt)), copy.deepcopy(opt)):
        assert isinstance(clone, MonitoredOptimizer)
        assert clone.monitor.callback is None and clone.monitor.console is None
        assert clone.monitor.step_count == 4
        assert [r.loss for r in clone.monitor.history] == [r.loss for r in opt.monitor.history]
        assert clone.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
        clone.step()  # still usable
        assert clone.monitor.step_count == 5


def test_step_hooks_registered_on_the_wrapper_run() -> None:
    model = _model()
    opt = wrap(torch.optim.SGD(model.parameters(), lr=0.1), console=_quiet())
    calls = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append(("pre", o.monitor.step_count)))
    opt.register_step_post_hook(lambda o, a, k: calls.append(("post", o.monitor.step_count)))
    _train(opt, model, 2)
    assert calls == [("pre", 0), ("post", 1), ("pre", 1), ("post", 2)]


def test_global_optimizer_hooks_run_once_per_step_and_a_pre_hook_can_swap_the_closure() -> None:
    from torch.optim.optimizer import (
        register_optimizer_step_post_hook,
        register_optimizer_step_pre_hook,
    )

    model = _model()
    opt = wrap(torch.optim.SGD(model.parameters(), lr=0.1), console=_quiet())
    seen: list[str] = []
    handles = [
        register_optimizer_step_pre_hook(lambda o, a, k: seen.append(type(o).__name__)),
        register_optimizer_step_post_hook(lambda o, a, k: seen.append(type(o).__name__)),
    ]
    try:
        _train(opt, model, 2)
    finally:
        for h in handles:
            h.remove()
    # the wrapped optimizer's step runs them; the wrapper does not run them a second time
    assert seen == ["SGD"] * 4
    x, y = _batch(0)
    swapped = []

    def closure() -> torch.Tensor:
        swapped.append(True)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    opt.register_step_pre_hook(lambda o, a, k: ((o, closure), {}))
    opt.step(lambda: torch.tensor(0.0))
    assert swapped == [True]  # the hook's closure ran, as torch's own hook wrapper allows


# -- loss reporting, clipping, accumulation -------------------------------------------------------
def test_gradient_accumulation_records_the_mean_loss() -> None:
    model = _model()
    opt = wrap(torch.optim.SGD(model.parameters(), lr=0.05), console=_quiet())
    for step in range(3):
        losses = []
        for micro in range(4):
            x, y = _batch(10 * step + micro)
            loss = torch.nn.functional.mse_loss(model(x), y)
            (loss / 4).backward()
            opt.report(loss)
            losses.append(loss.item())
        opt.step()
        opt.zero_grad()
        assert opt.monitor.history[-1].loss == pytest.approx(sum(losses) / 4, rel=1e-6)
    assert opt.monitor.step_count == 3


def test_report_accepts_floats_and_rejects_non_scalars() -> None:
    p = torch.nn.Parameter(torch.ones(2))
    opt = wrap(torch.optim.SGD([p], lr=0.1), console=_quiet())
    opt.report(2.5)
    opt.step()
    assert opt.monitor.history[-1].loss == 2.5
    with pytest.raises(AutowarmError, match=r"loss must be a scalar tensor but got shape \(3,\)"):
        opt.report(torch.ones(3))
    with pytest.raises(AutowarmError, match="loss must be a tensor or a float but got str"):
        opt.report("1.0")  # type: ignore[arg-type]


def test_report_does_not_keep_the_graph() -> None:
    model = _model()
    opt = wrap(torch.optim.SGD(model.parameters(), lr=0.1), console=_quiet())
    x, y = _batch(0)
    loss = torch.nn.functional.mse_loss(model(x), y)
    opt.report(loss)
    kept = opt._loss_sum
    # a CPU loss is kept as its float (read for free), never the tensor with its graph
    assert isinstance(kept, float) or (kept is not None and not kept.requires_grad)


def test_report_of_a_loss_that_requires_grad_warns_nothing() -> None:
    # torch warns when a tensor that requires grad is read as a float; report() reads a
    # detached one, so a user's loop gets no warning from the extra line
    model = _model()
    opt = wrap(torch.optim.SGD(model.parameters(), lr=0.1), console=_quiet())
    loss = torch.nn.functional.mse_loss(model(_batch(0)[0]), _batch(0)[1])
    loss.backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.report(loss)
        opt.step()
    assert opt.monitor.history[-1].loss == pytest.approx(float(loss.detach()))


def test_torch_clip_grad_norm_before_step_records_the_pre_clip_norm() -> None:
    bare_model, wrapped_model = _model(), _model()
    bare = torch.optim.SGD(bare_model.parameters(), lr=0.5)
    wrapped = wrap(torch.optim.SGD(wrapped_model.parameters(), lr=0.5), console=_quiet())
    bare_norms = []
    for opt, model in ((bare, bare_model), (wrapped, wrapped_model)):
        for step in range(5):
            x, y = _batch(step)
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)  # a generator
            if opt is bare:
                bare_norms.append(norm.item())
            if opt is wrapped:
                wrapped.report(loss)
            opt.step()
    _assert_same(_params(bare_model), _params(wrapped_model))
    # the user's own clip (left as it is) hands the monitor the norm it measured before
    # clipping: the same numbers the bare run's clip returned
    assert all(r.grad_norm > 0.1 for r in wrapped.monitor.history)
    assert [round(r.grad_norm, 5) for r in wrapped.monitor.history] == [
        round(n, 5) for n in bare_norms
    ]


@pytest.mark.skipif(not hasattr(torch.nn.utils, "get_total_norm"), reason="torch < 2.6")
def test_a_clip_in_two_halves_records_the_pre_clip_norm() -> None:
    # accelerate >= 1.10 and transformers clip as get_total_norm + clip_grads_with_norm_,
    # in parts when parameters live on different meshes: the parts of one total are one clip
    model = _model()
    opt = wrap(torch.optim.SGD(model.parameters(), lr=0.5), console=_quiet())
    norms = []
    for step in range(4):
        x, y = _batch(step)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        params = list(model.parameters())
        total = torch.nn.utils.get_total_norm([p.grad for p in params])
        torch.nn.utils.clip_grads_with_norm_(params[:1], 0.1, total)
        torch.nn.utils.clip_grads_with_norm_(params[1:], 0.1, total)
        norms.append(total.item())
        opt.report(loss)
        opt.step()
    assert min(norms) > 0.1
    assert [r.grad_norm for r in opt.monitor.history] == pytest.approx(norms)


@pytest.mark.parametrize("factor, warned", [(5.0, False), (100.0, True)])
def test_under_clipping_a_clipped_moderate_excursion_is_no_spike(factor, warned) -> None:
    # nanoGPT's loop: clip_grad_norm_(params, 1.0) with pre-clip norms above 1.0 most steps
    model = _model()
    opt = wrap(torch.optim.SGD(model.parameters(), lr=0.01), console=_quiet())
    for step in range(60):
        x, y = _batch(step % 4)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        if step == 50:
            for p in model.parameters():
                p.grad.mul_(factor)  # type: ignore[union-attr]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1e-3)
        opt.report(loss)
        opt.step()
    spikes = [e.step for e in opt.monitor.events if e.kind == "spike" and e.signal == "grad_norm"]
    assert spikes == ([50] if warned else [])
    assert opt.monitor.history[50].grad_norm > 1e-3  # the pre-clip norm, as before


def test_wrapper_clip_grad_norm_matches_torch_and_records_pre_clip_norm() -> None:
    bare_model, wrapped_model = _model(), _model()
    wrapped = wrap(torch.optim.SGD(wrapped_model.parameters(), lr=0.5), console=_quiet())
    x, y = _batch(0)
    for model in (bare_model, wrapped_model):
        torch.nn.functional.mse_loss(model(x), y).backward()
    expected = torch.nn.utils.clip_grad_norm_(bare_model.parameters(), 0.1)
    got = wrapped.clip_grad_norm_(0.1)
    torch.testing.assert_close(got, expected)
    for a, b in zip(bare_model.parameters(), wrapped_model.parameters()):
        torch.testing.assert_close(a.grad, b.grad)
    wrapped.step()
    assert wrapped.monitor.history[-1].grad_norm == pytest.approx(expected.item(), rel=1e-6)
    assert expected.item() > 0.1  # it really clipped


@pytest.mark.parametrize(
    "dtypes",
    [
        (torch.float64,),
        (torch.bfloat16,),
        (torch.float16,),
        (torch.complex64,),
        (torch.float16, torch.float64, torch.complex128),
    ],
    ids=["float64", "bfloat16", "float16", "complex64", "mixed"],
)
def test_the_recorded_norm_is_exact_for_every_parameter_dtype(dtypes: tuple) -> None:
    # float64 and complex models used to crash step(): the norm pass asked for dtype=float32
    params = [torch.nn.Parameter(torch.zeros(50, dtype=dtypes[i % len(dtypes)])) for i in range(4)]
    opt = wrap(torch.optim.SGD(params, lr=0.1), console=_quiet())
    big = 300.0  # fp16 squares overflow from 256: the norm accumulates in float32
    for i, p in enumerate(params):
        p.grad = torch.full_like(p, big * (i + 1))
    opt.report(1.0)
    opt.step()
    expected = math.sqrt(sum(50 * (big * (i + 1)) ** 2 for i in range(4)))
    assert opt.monitor.history[-1].grad_norm == pytest.approx(expected, rel=1e-3)


# -- GradScaler -----------------------------------------------------------------------------------
def _amp_run(
    opt: torch.optim.Optimizer,
    model: torch.nn.Module,
    steps: int,
    *,
    overflow_at: int | None = None,
    unscale: bool = False,
) -> torch.amp.GradScaler:
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    for step in range(steps):
        x, y = _batch(step)
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        loss = torch.nn.functional.mse_loss(out.float(), y)
        scaled = scaler.scale(loss)
        if step == overflow_at:
            scaled = scaled * 1e38  # the scaled gradients overflow float32, as fp16 ones do
        scaled.backward()
        if isinstance(opt, MonitoredOptimizer):
            opt.report(loss)
        if unscale:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        scaler.step(opt)
        scaler.update()
    return scaler


AMP_OPTS = {k: OPTIMIZERS[k] for k in OPTIMIZERS if k in ("adam", "sgd", "adam-fused")}


@pytest.mark.parametrize("unscale", [False, True], ids=["step-only", "unscale-clip"])
@pytest.mark.parametrize("name", sorted(AMP_OPTS))
def test_grad_scaler_matches_bare_and_counts_skipped_steps(name: str, unscale: bool) -> None:
    bare_model, wrapped_model = _model(), _model()
    bare = AMP_OPTS[name](list(bare_model.parameters()))
    wrapped = wrap(AMP_OPTS[name](list(wrapped_model.parameters())), console=_quiet())
    s_bare = _amp_run(bare, bare_model, 8, overflow_at=5, unscale=unscale)
    s_wrapped = _amp_run(wrapped, wrapped_model, 8, overflow_at=5, unscale=unscale)
    assert s_wrapped.get_scale() == s_bare.get_scale() == 2.0**7  # one halving
    for a, b in zip(_params(bare_model), _params(wrapped_model)):
        torch.testing.assert_close(a, b)
    if "step" in bare.state_dict()["state"].get(0, {}):
        # Adam's step counter did not count the skipped step, wrapped or not
        assert float(bare.state_dict()["state"][0]["step"]) == 7.0
        assert float(wrapped.state_dict()["state"][0]["step"]) == 7.0
    mon = wrapped.monitor
    assert mon.step_count == 8  # the skipped step was seen
    assert [e.kind for e in mon.events] == ["amp_skip"]
    assert mon.events[0].step == 5 and not mon.events[0].is_instability
    assert [r.step for r in mon.history if r.skipped] == [5]
    assert mon.history[5].amp_overflow
    # the recorded norms are of unscaled gradients
    assert mon.history[4].grad_norm < 100


def test_grad_scaler_skip_keeps_params_unchanged() -> None:
    model = _model()
    opt = wrap(torch.optim.Adam(model.parameters(), lr=1e-2), console=_quiet())
    _amp_run(opt, model, 3)
    before = _params(model)
    state_before = copy.deepcopy(opt.state_dict())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    x, y = _batch(0)
    loss = torch.nn.functional.mse_loss(model(x), y)
    (scaler.scale(loss) * 1e38).backward()
    scaler.step(opt)
    _assert_same(before, _params(model))
    assert opt.state_dict()["state"][0]["step"] == state_before["state"][0]["step"]


# -- actions --------------------------------------------------------------------------------------
SKIP_OPTS = {k: OPTIMIZERS[k] for k in OPTIMIZERS if k in ("adam", "sgd-momentum-foreach")}
SKIP_OPTS.update({k: OPTIMIZERS[k] for k in OPTIMIZERS if k == "adamw-fused"})


@pytest.mark.parametrize("fault", ["nan-grad", "inf-grad", "inf-loss"])
@pytest.mark.parametrize("name", sorted(SKIP_OPTS))
def test_skip_really_skips(name: str, fault: str) -> None:
    model = _model()
    opt = wrap(SKIP_OPTS[name](list(model.parameters())), actions="skip", console=_quiet())
    _train(opt, model, 3)
    before = _params(model)
    state_before = copy.deepcopy(opt.state_dict())
    loss = _backward_at_step_3(opt, model)
    if fault == "nan-grad":
        model[2].bias.grad[0] = math.nan
    elif fault == "inf-grad":
        model[0].weight.grad[3, 2] = math.inf
    opt.report(loss * math.inf if fault == "inf-loss" else loss)
    opt.step()
    # parameters and the optimizer state (moments, step counters) are untouched
    _assert_same(before, _params(model))
    assert opt.state_dict()["param_groups"] == state_before["param_groups"]
    _assert_state_unchanged(opt, state_before)
    ev = opt.monitor.events
    assert [(e.step, e.kind, e.action) for e in ev] == [(3, "nonfinite", "skip")]
    assert ev[0].signal == ("loss" if fault == "inf-loss" else "grad_norm")
    assert opt.monitor.history[3].skipped
    # training goes on normally afterwards
    _train(opt, model, 2)
    assert opt.monitor.step_count == 6
    assert all(torch.isfinite(p).all() for p in model.parameters())


FUSED_PRESENT = sorted(k for k in OPTIMIZERS if k.endswith("-fused"))


@pytest.mark.skipif(not FUSED_PRESENT, reason="this torch build has no fused CPU optimizers")
@pytest.mark.parametrize("name", FUSED_PRESENT)
def test_fused_optimizers_skip_nonfinite_steps_on_the_device(name: str) -> None:
    # what CUDA does with a fused optimizer: no host read before the update, the kernel skips
    model = _model()
    opt = wrap(
        OPTIMIZERS[name](list(model.parameters())),
        actions={"nonfinite": "skip"},
        read_every=16,
        console=_quiet(),
    )
    _train(opt, model, 3)
    before = _params(model)
    state_before = copy.deepcopy(opt.state_dict())
    loss = _backward_at_step_3(opt, model)
    model[0].bias.grad[1] = math.nan
    opt.report(loss)
    opt.step()
    assert len(opt.monitor._history) == 0  # nothing was read back
    _assert_same(before, _params(model))
    _assert_state_unchanged(opt, state_before)
    _train(opt, model, 2)
    opt.monitor.flush()
    assert [(e.step, e.kind, e.action) for e in opt.monitor.events] == [(3, "nonfinite", "skip")]
    assert [r.skipped for r in opt.monitor.history] == [False, False, False, True, False, False]
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_raise_stops_before_the_update() -> None:
    model = _model()
    opt = wrap(
        torch.optim.SGD(model.parameters(), lr=0.1),
        actions={"nonfinite": "raise"},
        console=_quiet(),
    )
    _train(opt, model, 2)
    before = _params(model)
    opt.report(torch.tensor(math.nan))
    with pytest.raises(InstabilityError) as info:
        opt.step()
    assert info.value.event.kind == "nonfinite"
    assert info.value.event.step == 2
    assert "step 2: nonfinite in loss" in str(info.value)
    _assert_same(before, _params(model))
    assert opt.monitor.step_count == 3


def test_callback_and_rate_limited_warnings() -> None:
    console = _quiet()
    seen = []
    p = torch.nn.Parameter(torch.ones(2))
    opt = wrap(torch.optim.SGD([p], lr=0.1), callback=seen.append, console=console)
    for step in range(250):
        p.grad = torch.full((2,), math.nan)
        opt.report(10.0 / (1 + step))  # a healthy loss, NaN gradients
        opt.step()
    # read in batches of read_every (16) steps: 240 so far; flush() reads the rest now
    assert len(seen) == 240
    opt.monitor.flush()
    assert len(seen) == 250 and all(e.kind == "nonfinite" for e in seen)
    lines = console.file.getvalue().strip().splitlines()
    assert len(lines) == 3  # steps 0, 100, 200: never a line per step
    assert "autowarm: step 0: nonfinite in grad_norm (nan" in lines[0]
    assert "(+99 more since step 0)" in lines[1]
    assert opt.monitor.counts["nonfinite"] == 250


def test_record_action_is_silent() -> None:
    console = _quiet()
    p = torch.nn.Parameter(torch.ones(2))
    opt = wrap(torch.optim.SGD([p], lr=0.1), actions="record", console=console)
    p.grad = torch.full((2,), math.inf)
    opt.step()
    assert console.file.getvalue() == ""
    assert [e.kind for e in opt.monitor.events] == ["nonfinite"]


def test_batched_reading_keeps_exact_steps() -> None:
    # what CUDA does: numbers stay on the device and are read every `read_every` steps
    p = torch.nn.Parameter(torch.ones(2))
    opt = wrap(torch.optim.SGD([p], lr=0.1), read_every=4, console=_quiet())
    for step in range(6):
        p.grad = torch.full((2,), math.nan if step == 2 else 1.0)
        opt.report(torch.tensor(1.0))
        opt.step()
        assert len(opt.monitor._history) == (4 if step >= 3 else 0)  # read in batches of 4
    assert [(e.step, e.kind) for e in opt.monitor._events] == [(2, "nonfinite")]
    assert len(opt.monitor.history) == 6  # looking at it reads the pending steps
    assert [r.step for r in opt.monitor.history] == list(range(6))


def test_summary_renders_a_table() -> None:
    p = torch.nn.Parameter(torch.ones(2))
    opt = wrap(torch.optim.SGD([p], lr=0.1), actions="record", console=_quiet())
    for step in range(3):
        p.grad = torch.full((2,), math.nan if step else 1.0)
        opt.step()
    out = _quiet()
    opt.monitor.summary(out)
    text = out.file.getvalue()
    assert "autowarm monitor: 3 steps, 0 skipped" in text
    assert "nonfinite" in text and "grad_norm" in text
    row = next(line for line in text.splitlines() if "nonfinite" in line)
    cells = [c.strip() for c in row.strip().strip("│").split("│")]
    assert cells[:6] == ["nonfinite", "grad_norm", "2", "1", "2", "nan"]


def test_summary_when_healthy() -> None:
    model = _model()
    opt = wrap(torch.optim.SGD(model.parameters(), lr=0.05), console=_quiet())
    _train(opt, model, 3)
    out = _quiet()
    opt.monitor.summary(out)
    assert out.file.getvalue().strip() == "autowarm monitor: 3 steps, 0 skipped; no events."


# -- the probe hook -------------------------------------------------------------------------------
class _FakeController:
    def __init__(self, opt: MonitoredOptimizer, session: object) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def before_step(self, opt: MonitoredOptimizer, *hook_args: object) -> None:
        self.calls.append(("before", opt.monitor.step_count, len(opt.monitor.history)))
        for group in opt.param_groups:
            group["lr"] = 0.0  # the controller owns the LR: this update must not move params

    def after_step(self, opt: MonitoredOptimizer, *hook_args: object) -> None:
        opt.monitor.flush()
        self.calls.append(("after", opt.monitor.step_count, opt.monitor.history[-1].step))


def test_probe_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    import autowarm.probe._child as trial

    monkeypatch.setenv("AUTOWARM_TRIAL", "1")
    # the real attach(): the controller rides the wrapper's step hooks
    monkeypatch.setattr(trial, "Controller", _FakeController)
    monkeypatch.setattr(trial, "_get_session", lambda: None)
    model = _model()
    opt = wrap(torch.optim.SGD(model.parameters(), lr=0.1), console=_quiet())
    assert isinstance(opt._controller, _FakeController)
    before = _params(model)
    _train(opt, model, 2)
    _assert_same(before, _params(model))
    assert opt._controller.calls == [
        ("before", 0, 0),
        ("after", 1, 0),
        ("before", 1, 1),
        ("after", 2, 1),
    ]


def test_no_probe_hook_outside_trials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOWARM_TRIAL", raising=False)
    opt = wrap(torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1))
    assert opt._controller is None


# -- bad input ------------------------------------------------------------------------------------
def _sgd() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": -3}, "window must be a positive int but got -3."),
        ({"window": 2.5}, "window must be a positive int but got 2.5."),
        ({"window": True}, "window must be a positive int but got True."),
        ({"min_history": 0}, "min_history must be a positive int but got 0."),
        ({"min_history": 100}, "min_history must be <= window but got 100 > 64."),
        ({"spike_zscore": -1.0}, "spike_zscore must be a positive finite number but got -1.0."),
        ({"spike_zscore": "6"}, "spike_zscore must be a positive finite number but got '6'."),
        ({"spike_ratio": 0.5}, "spike_ratio must be > 1 but got 0.5."),
        (
            {"spike_hard_ratio": 1.5},
            "spike_hard_ratio must be >= spike_ratio but got 1.5 < 2.0.",
        ),
        ({"spread_floor": math.nan}, "spread_floor must be a positive finite number but got nan"),
        ({"divergence_rise": 0}, "divergence_rise must be a positive finite number but got 0."),
        ({"divergence_fraction": 1.5}, "divergence_fraction must be <= 1 but got 1.5."),
        ({"stall_tolerance": 1.0}, "stall_tolerance must be < 1 but got 1.0."),
        ({"stall_steps": -5}, "stall_steps must be a positive int but got -5."),
        ({"amp_skip_patience": 0}, "amp_skip_patience must be a positive int but got 0."),
        ({"read_every": 0}, "read_every must be a positive int but got 0."),
        ({"warn_interval": -1}, "warn_interval must be a positive int but got -1."),
        ({"actions": "explode"}, "actions['nonfinite'] must be one of"),
        ({"actions": {"nan": "warn"}}, "actions has an unknown event kind 'nan'"),
        ({"actions": {"divergence": "skip"}}, "actions['divergence'] must be one of"),
        ({"actions": {"amp_skip": "skip"}}, "actions['amp_skip'] must be one of"),
        ({"actions": 3}, "actions must be a str or a mapping of event kind to action but got int"),
        ({"callback": 3}, "callback must be callable but got int."),
        ({"console": "stderr"}, "console must be a rich Console but got str."),
    ],
)
def test_bad_options(kwargs: dict, message: str) -> None:
    with pytest.raises(AutowarmError) as info:
        wrap(_sgd(), **kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (torch.nn.Linear(2, 2), "optimizer must be a torch.optim.Optimizer but got Linear."),
        (None, "optimizer must be a torch.optim.Optimizer but got NoneType."),
    ],
)
def test_wrap_rejects_non_optimizers(target: object, message: str) -> None:
    with pytest.raises(AutowarmError, match=message):
        wrap(target)  # type: ignore[arg-type]


def test_wrap_rejects_double_wrapping() -> None:
    opt = wrap(_sgd())
    with pytest.raises(AutowarmError, match=r"already wrapped by autowarm\.wrap"):
        autowarm.wrap(opt)
    with pytest.raises(AutowarmError, match=r"already wrapped by autowarm\.wrap"):
        MonitoredOptimizer(opt)


def test_direct_construction_has_default_settings() -> None:
    opt = MonitoredOptimizer(_sgd())
    assert opt.monitor.actions == autowarm.monitor.DEFAULT_ACTIONS
    with pytest.raises(AutowarmError, match=r"optimizer must be a torch\.optim\.Optimizer"):
        MonitoredOptimizer([])  # type: ignore[arg-type]


# -- CUDA: no host sync per step (runs only where a GPU is present) -------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("fused", [False, True])
def test_no_host_sync_between_reads_on_cuda(fused: bool) -> None:
    model = _model().cuda()
    opt = wrap(
        torch.optim.AdamW(model.parameters(), lr=1e-3, fused=fused, foreach=not fused),
        read_every=16,
        console=_quiet(),
    )
    batches = [tuple(t.cuda() for t in _batch(i)) for i in range(10)]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for x, y in batches:  # 10 steps < read_every: nothing may be read back
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.report(loss)
            opt.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(opt.monitor.history) == 0
    opt.monitor.flush()
    assert [r.step for r in opt.monitor.history] == list(range(10))


def test_wrap_threshold_keywords_are_thresholds_fields_with_their_defaults() -> None:
    import dataclasses
    import inspect

    from autowarm.monitor import Thresholds

    params = inspect.signature(wrap).parameters
    for f in dataclasses.fields(Thresholds):
        assert f.name in params, f"wrap() lacks the threshold keyword {f.name!r}"
        assert params[f.name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[f.name].default == f.default, f.name
    opt = wrap(_sgd(), window=32, stall_steps=7, spike_zscore=5.0)
    got = opt.monitor.thresholds
    assert (got.window, got.stall_steps, got.spike_zscore) == (32, 7, 5.0)
    assert got.min_history == Thresholds().min_history


def test_a_x100_grad_spike_behind_the_users_clip_is_caught_at_that_step() -> None:
    model = _model()
    opt = wrap(torch.optim.AdamW(model.parameters(), lr=1e-3), console=_quiet())
    for step in range(60):
        x, y = _batch(step)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        if step == 50:
            for p in model.parameters():
                p.grad.mul_(100.0)
        torch.nn.utils.clip_grad.clip_grad_norm_(model.parameters(), max_norm=1.0)
        opt.report(loss)
        opt.step()
    spikes = [e for e in opt.monitor.events if e.kind == "spike" and e.signal == "grad_norm"]
    assert [e.step for e in spikes] == [50]


def test_a_clip_of_other_parameters_is_not_taken_for_this_optimizers() -> None:
    a, b = _model(), _model()
    opt = wrap(torch.optim.SGD(a.parameters(), lr=0.1), console=_quiet())
    x, y = _batch(0)
    torch.nn.functional.mse_loss(a(x), y).backward()
    torch.nn.functional.mse_loss(b(x), y).backward()
    own = torch.sqrt(sum((p.grad**2).sum() for p in a.parameters())).item()
    torch.nn.utils.clip_grad_norm_(b.parameters(), 1e-3)  # another model's gradients
    opt.step()
    assert opt.monitor.history[-1].grad_norm == pytest.approx(own, rel=1e-5)
