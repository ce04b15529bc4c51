"""``autowarm.wrap(optimizer)``: a :class:`torch.optim.Optimizer` that watches the one it wraps.

The wrapper forwards ``param_groups``, ``state``, ``defaults``, ``state_dict``,
``load_state_dict``, ``zero_grad`` and ``add_param_group`` to the wrapped optimizer (as
accelerate's ``AcceleratedOptimizer`` does), so LR schedulers, checkpoints and GradScaler see the
real thing, and a checkpoint saved through the wrapper loads into the bare optimizer and back.

Per ``step()``, on the gradients' device and without a host sync:

1) the total L2 gradient norm, one fused ``torch._foreach_norm`` pass per device (it is
   non-finite iff some gradient element is, so it doubles as the NaN/Inf check);
2) the mean of the losses passed to ``report()`` since the previous step (gradient
   accumulation: call ``report()`` every micro-step; the mean is what the step "saw" when each
   micro-batch loss is reported unscaled -- detection is scale-free, so reporting
   ``loss / accum_steps`` instead changes the recorded numbers, not what is detected);
3) GradScaler's ``found_inf`` when it drives the step.

These three numbers stay where they are (0-dim tensors on the gradients' device, or floats)
until the host reads them, on every device alike:

- every ``read_every`` steps (default 16), all pending steps in one ``torch.stack(...).tolist()``
  -- one sync per 16 steps on CUDA; on the CPU, where reading is free, batching keeps the
  per-step Python small: detection, warnings and callbacks run 16 steps at a time, so they lag
  by at most 15 steps (each event still carries the exact step it happened at). Looking at
  ``monitor.history``, ``.events`` or ``.counts`` reads the pending steps first, and
  ``monitor.flush()`` reads now.
- ``"skip"`` or ``"raise"`` configured for any kind: every step, before the update (the decision
  must be known before the parameters change) -- one host sync per step, the same price
  GradScaler pays for its own ``found_inf.item()``. Except ``actions={"nonfinite": "skip"}``
  with a fused optimizer (``fused=True`` Adam, AdamW, SGD, ...): the non-finite flag is handed to
  the fused kernel as its ``found_inf``, which skips the update on the device -- no sync.

Measured cost (``python scripts/bench_overhead.py``, CPU, one thread; ratio of total step
times): 1.006-1.009 on a 0.43M-param Transformer LM (a 50 ms step), 1.030-1.040 on a 6x256 MLP
(a 4-7 ms step, by machine) -- there ~2.3 points are the norm pass itself
(``--without-norm-pass`` gives 1.011-1.018), the rest the wrapper's and the detector's Python,
run 16 steps at a time.
The CUDA claims above follow from the code (no ``.item()``, ``float()`` or blocking copy between
reads; ``tests/monitor`` checks them with ``torch.cuda.set_sync_debug_mode("error")`` where a
GPU is present) and have not been measured on a GPU.

Clipping: after ``torch.nn.utils.clip_grad_norm_`` the gradients hide any spike, so the
monitor records the norm the clip measured *before* clipping (:mod:`._clip` taps the call:
nanoGPT's loop, the HF Trainer and Lightning's ``gradient_clip_val`` all go through it) and
skips its own norm pass. ``optimizer.clip_grad_norm_(max_norm)`` does the same explicitly.

GradScaler: the wrapper declares ``_step_supports_amp_scaling`` (the protocol of torch's fused
optimizers), so ``scaler.step(optimizer)`` always calls ``step()``, handing it ``found_inf``
(and ``grad_scale`` when ``unscale_`` was not called). Skipped steps are therefore seen and
counted (``amp_skip``). Fused inner optimizers get ``found_inf`` passed on and skip on the
device; others are stepped only when ``found_inf`` is zero, read with ``.item()`` exactly as
GradScaler does for them.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from rich.console import Console

from autowarm._errors import AutowarmError, InstabilityError
from autowarm.monitor import _clip, _ranks
from autowarm.monitor._detect import Thresholds
from autowarm.monitor._event import Event
from autowarm.monitor._monitor import Monitor

_DEFAULTS = Thresholds()
_HOOK_DICTS = (
    "_optimizer_step_pre_hooks",
    "_optimizer_step_post_hooks",
    "_optimizer_state_dict_pre_hooks",
    "_optimizer_state_dict_post_hooks",
    "_optimizer_load_state_dict_pre_hooks",
    "_optimizer_load_state_dict_post_hooks",
)


class MonitoredOptimizer(torch.optim.Optimizer):
    """A torch optimizer wrapped by :func:`wrap`; ``.optimizer`` is the wrapped one and
    ``.monitor`` the :class:`Monitor` with history and events."""

    # GradScaler calls step() of such optimizers even for Inf/NaN gradients, with `found_inf`
    # (and `grad_scale`) set as attributes, instead of silently not calling it.
    _step_supports_amp_scaling = True

    def __init__(self, optimizer: torch.optim.Optimizer, monitor: Monitor | None = None) -> None:
        # Optimizer.__init__ is not called: the wrapped optimizer owns groups and state.
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        self.monitor = monitor if monitor is not None else Monitor()
        _clip.install()  # the user's own clip_grad_norm_ hands over the pre-clip norm
        self._init_transient()
        # inside an `autowarm probe` trial process only: the trial's controller rides this
        # wrapper's step hooks (it sets each step's LR and may end the trial)
        self._controller: Any = None
        if os.environ.get("AUTOWARM_TRIAL"):
            from autowarm.probe._child import attach

            self._controller = attach(self)

    def _init_transient(self) -> None:
        # register_step_pre_hook/post_hook fill these; step() runs them itself instead of
        # torch's profile_hook_step: its record_function scope around the inner optimizer's
        # own made every op of the update slower (0.2-0.3 ms a step on a 0.35M-param AdamW,
        # the largest part of the monitor's cost), and it ran torch's global hooks twice
        for name in _HOOK_DICTS:
            setattr(self, name, OrderedDict())
        self._loss_sum: torch.Tensor | float | None = None
        self._n_reports = 0
        self._pre_clip_norm: tuple[torch.Tensor, float] | None = None  # (norm, max_norm)

    # -- forwarded state (setters too: schedulers and checkpoint code assign these) ------------
    @property  # type: ignore[override]
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        self.optimizer.param_groups = value

    @property  # type: ignore[override]
    def state(self) -> Any:
        return self.optimizer.state

    @state.setter
    def state(self, value: Any) -> None:
        self.optimizer.state = value

    @property  # type: ignore[override]
    def defaults(self) -> dict[str, Any]:
        return self.optimizer.defaults

    @defaults.setter
    def defaults(self, value: dict[str, Any]) -> None:
        self.optimizer.defaults = value

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.optimizer.add_param_group(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def __getattr__(self, name: str) -> Any:
        # only reached for names the wrapper lacks: methods of custom optimizers (e.g. a
        # schedule-free optimizer's .train()/.eval()) keep working through the wrapper
        if name.startswith("__") or name in ("optimizer", "monitor"):
            raise AttributeError(name)
        return getattr(self.__dict__["optimizer"], name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.optimizer!r})"

    def __getstate__(self) -> dict[str, Any]:
        # the LR scheduler's patched `step`, hooks and the probe controller stay behind
        return {"optimizer": self.optimizer, "monitor": self.monitor}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_transient()
        self._controller = None

    # -- the extra line in the user's loop -----------------------------------------------------
    def report(self, loss: torch.Tensor | float) -> None:
        """Remember this micro-step's loss for the next ``step()``; no host sync.

        Call it every micro-step under gradient accumulation: the step records the mean.
        """
        if is_shell(self):  # Lightning's or Fabric's optimizer: see monitor/_find.py
            return _through_shell(self).report(loss)
        if isinstance(loss, torch.Tensor):
            if loss.numel() != 1:
                raise AutowarmError(
                    f"loss must be a scalar tensor but got shape {tuple(loss.shape)}; "
                    "reduce it (e.g. loss.mean()) before report()."
                )
            # kept as a tensor, read with the step's other numbers (see Monitor.flush);
            # detached: reading a tensor that requires grad warns since torch 2.x
            value: torch.Tensor | float = loss.detach()
            if value.dim():
                value = value.reshape(())
        elif isinstance(loss, (int, float)) and not isinstance(loss, bool):
            value = float(loss)
        else:
            raise AutowarmError(f"loss must be a tensor or a float but got {type(loss).__name__}.")
        total = self._loss_sum
        if isinstance(total, torch.Tensor) and isinstance(value, torch.Tensor):
            value = value.to(total.device)
        self._loss_sum = value if total is None else total + value
        self._n_reports += 1

    def clip_grad_norm_(self, max_norm: float, *, error_if_nonfinite: bool = False) -> torch.Tensor:
        """``torch.nn.utils.clip_grad_norm_`` over all parameters of this optimizer, sharing
        its norm computation with the monitor, which then records the norm *before* clipping
        (after clipping, a grad-norm spike is invisible). Returns the total norm."""
        if is_shell(self):  # Lightning's or Fabric's optimizer: see monitor/_find.py
            return _through_shell(self).clip_grad_norm_(
                max_norm, error_if_nonfinite=error_if_nonfinite
            )
        grads = self._grads()
        norm = _total_norm(grads, self._first_device())
        if error_if_nonfinite and not torch.isfinite(norm):
            raise RuntimeError(f"the total norm of the gradients is non-finite: {norm.item()}")
        self._pre_clip_norm = (norm, float(max_norm))
        if grads:
            coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
            for device, group in _by_device(grads).items():
                torch._foreach_mul_(group, coef.to(device))
        return norm

    # -- step ----------------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        # the wrapper's own step hooks, as torch runs an optimizer's (args include self); the
        # global hooks run once, in the wrapped optimizer's step
        args: tuple[Any, ...] = (self,) if closure is None else (self, closure)
        kwargs: dict[str, Any] = {}
        for pre_hook in list(self._optimizer_step_pre_hooks.values()):
            result = pre_hook(self, args, kwargs)
            if result is not None:
                args, kwargs = result
        closure = args[1] if len(args) > 1 else kwargs.get("closure")
        monitor = self.monitor
        step = monitor.step_count
        try:
            out = self._step(step) if closure is None else self._step_with_closure(closure, step)
        finally:
            # counts every call, skipped and raising ones included
            monitor.step_count = step + 1
        for post_hook in list(self._optimizer_step_post_hooks.values()):
            post_hook(self, args, kwargs)
        return out

    def _step(self, step: int) -> Any:
        monitor = self.monitor
        grad_scale = self.__dict__.get("grad_scale")  # set by GradScaler.step, see module doc
        found_inf = self.__dict__.get("found_inf")
        # 1) gradients, unscaled if GradScaler left that to us
        grads = self._grads()
        device = grads[0].device if grads else self._first_device()
        if grad_scale is not None:
            inv_scale = grad_scale.double().reciprocal().float()
            for dev, group in _by_device(grads).items():
                torch._foreach_mul_(group, inv_scale.to(dev))
        # 2) the per-step numbers, left on the device: the host reads them in batches
        clip = self._clipped_norm()
        norm, clip_at = clip if clip is not None else (_total_norm(grads, device), None)
        loss = self._take_loss()
        # 3) GradScaler with an optimizer that cannot skip on the device: GradScaler itself
        #    would read found_inf here, so doing it costs nothing extra
        inner_amp = bool(getattr(self.optimizer, "_step_supports_amp_scaling", False))
        amp_overflow: bool | None = None
        if found_inf is not None and not inner_amp:
            amp_overflow = bool(found_inf.item())
        # 4) "skip" for non-finite steps with a fused optimizer: its found_inf input skips the
        #    update (and undoes its step count) on the device, so no host decision is needed
        device_skip = inner_amp and monitor.actions["nonfinite"] == "skip"
        skip_flag = found_inf
        if device_skip:
            bad = _nonfinite(loss, norm)
            skip_flag = bad if found_inf is None else torch.maximum(found_inf.float(), bad)
        stats = (math.nan if loss is None else loss, norm, 0.0 if found_inf is None else found_inf)
        monitor._push(
            step, stats, has_loss=loss is not None, lr=self._lr(), can_skip=True, clip_at=clip_at
        )
        skip = False
        decide = monitor.needs_decision()  # skip/raise set: ranks agree (see _decide)
        if (
            (decide and monitor.needs_decision(device_skip=device_skip))
            or amp_overflow is not None
            or len(monitor._pending) >= monitor.read_every
        ):
            skip = self._decide(step, norm.device, decide=decide)
        # 5) the update
        if skip or amp_overflow:
            return None
        if skip_flag is not None and inner_amp:
            inner = self.optimizer
            inner.found_inf = skip_flag  # type: ignore[attr-defined]
            try:
                return inner.step()
            finally:
                del inner.found_inf  # type: ignore[attr-defined]
        return self.optimizer.step()

    def _count_amp_skip(self) -> None:
        """Record a step that GradScaler skipped without calling ``step()``: it does so for an
        optimizer that does not declare ``_step_supports_amp_scaling`` (the Lightning callback
        unsets it). The step is counted, as an ``amp_skip`` with the losses reported for it."""
        monitor = self.monitor
        step = monitor.step_count
        clip = self._clipped_norm()  # a clip of this step's (overflowed) gradients measured it
        loss = self._take_loss()
        stats = (math.nan if loss is None else loss, math.inf if clip is None else clip[0], 1.0)
        monitor._push(step, stats, has_loss=loss is not None, lr=self._lr(), can_skip=False)
        monitor.step_count = step + 1
        if len(monitor._pending) >= monitor.read_every:
            monitor.flush()

    def _step_with_closure(self, closure: Callable[[], Any], step: int) -> Any:
        if not _closure_runs_once(self.optimizer):
            return self._step_after_closure(closure, step)
        # a built-in torch optimizer's step(closure) is "loss = closure(); update": run the
        # closure here, so the monitor sees the gradients (and the user's clip) before the
        # update and "skip" / "raise" work as in any step (Lightning steps this way)
        reports = self._n_reports
        with torch.enable_grad():
            out = closure()
        if self._n_reports == reports and isinstance(out, torch.Tensor) and out.numel() == 1:
            self.report(out)
        self._step(step)
        return out

    def _step_after_closure(self, closure: Callable[[], Any], step: int) -> Any:
        # LBFGS and custom optimizers (SAM, ...) evaluate the closure inside their step, maybe
        # more than once: the monitor can only look afterwards, so "skip" degrades to "warn"
        out = self.optimizer.step(closure)
        if isinstance(out, torch.Tensor) and out.numel() == 1:
            self._loss_sum, self._n_reports = None, 0
            self.report(out)
        grads = self._grads()
        clip = self._clipped_norm()  # a clip inside the closure measured it
        device = grads[0].device if grads else self._first_device()
        norm, clip_at = clip if clip is not None else (_total_norm(grads, device), None)
        loss = self._take_loss()
        monitor = self.monitor
        stats = (math.nan if loss is None else loss, norm, 0.0)
        monitor._push(
            step, stats, has_loss=loss is not None, lr=self._lr(), can_skip=False, clip_at=clip_at
        )
        if monitor.needs_decision() or len(monitor._pending) >= monitor.read_every:
            monitor.flush()  # a "raise" raises at its step, after the update it could not stop
        return out

    # -- helpers -------------------------------------------------------------------------------
    def _decide(self, step: int, device: torch.device, *, decide: bool) -> bool:
        """Read the pending statistics; whether this step's update is skipped. Raises
        :class:`InstabilityError` for "raise", before the update; under DDP the ranks agree
        first (:mod:`._ranks`) when the host decides per step."""
        raised: InstabilityError | None = None
        events: list[Event] = []
        try:
            events = self.monitor.flush()
        except InstabilityError as e:
            raised = e
        skip = any(e.step == step and e.action == "skip" for e in events)
        if decide:
            mine = None if raised is None else raised.event
            agreed, event = _ranks.agree(step, skip, mine, device)
            if agreed and not skip:  # another rank skips it: so do we, and say so
                self.monitor._history._mark_skipped(step)
            skip = agreed
            if raised is None and event is not None:
                raised = InstabilityError(event)
        if raised is not None:
            raise raised
        return skip

    def _clipped_norm(self) -> tuple[torch.Tensor, float] | None:
        """(norm before clipping, max_norm), when a clip since the last step measured it: ours
        (:meth:`clip_grad_norm_`) or the user's ``torch.nn.utils.clip_grad_norm_``."""
        mine, self._pre_clip_norm = self._pre_clip_norm, None
        tapped = _clip.take(self._grad_param_ids)
        return mine if mine is not None else tapped

    def _grad_param_ids(self) -> set[int]:
        return {
            id(p) for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None
        }

    def _grads(self) -> list[torch.Tensor]:
        grads = []
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is not None:
                    grads.append(g.coalesce()._values() if g.is_sparse else g)
        return grads

    def _first_device(self) -> torch.device:
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                return p.device
        return torch.device("cpu")

    def _take_loss(self) -> torch.Tensor | float | None:
        if self._loss_sum is None:
            return None
        loss = self._loss_sum / self._n_reports if self._n_reports > 1 else self._loss_sum
        self._loss_sum, self._n_reports = None, 0
        return loss

    def _lr(self) -> float:
        lr = self.optimizer.param_groups[0].get("lr", math.nan)
        if isinstance(lr, torch.Tensor):
            # reading a device tensor would sync; tensor LRs normally live on the CPU
            return float(lr) if lr.device.type == "cpu" else math.nan
        return float(lr)


def is_shell(obj: Any) -> bool:
    """Whether ``obj`` is a framework's shell of a :class:`MonitoredOptimizer`: an object of a
    subclass made on the fly that keeps the optimizer it wraps as ``_optimizer``, which a real
    one never has (Lightning's ``LightningOptimizer``, Fabric's ``_FabricOptimizer``)."""
    return "_optimizer" in getattr(obj, "__dict__", {})


def _through_shell(shell: MonitoredOptimizer) -> MonitoredOptimizer:
    from autowarm.monitor._find import monitored  # _find imports this module

    return monitored(shell)


def _closure_runs_once(optimizer: torch.optim.Optimizer) -> bool:
    """torch's own optimizers call the closure once, first (LBFGS aside); others may not."""
    cls = type(optimizer)
    return cls.__module__.startswith("torch.optim") and not isinstance(optimizer, torch.optim.LBFGS)


def _nonfinite(loss: torch.Tensor | float | None, norm: torch.Tensor) -> torch.Tensor:
    """1.0 where the step's loss or gradient norm is NaN/Inf, else 0.0, on the norm's device
    (the norm is non-finite iff some gradient element is)."""
    if isinstance(loss, torch.Tensor):
        norm = norm + loss.to(norm.device, non_blocking=True)  # NaN/Inf carry through a sum
    elif loss is not None and not math.isfinite(loss):
        return torch.ones((), device=norm.device)
    return (~torch.isfinite(norm)).float()


def _by_device(tensors: Iterable[torch.Tensor]) -> dict[torch.device, list[torch.Tensor]]:
    out: dict[torch.device, list[torch.Tensor]] = {}
    for t in tensors:
        out.setdefault(t.device, []).append(t)
    return out


def _total_norm(grads: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """Total L2 norm of ``grads`` as a float32 scalar on ``device``: one fused pass per device
    and dtype (:func:`_norms`)."""
    if not grads:
        return torch.zeros((), device=device)
    norms = []
    for group in _by_device(grads).values():
        norms.append(torch.linalg.vector_norm(torch.stack(_norms(group))).to(device))
    return norms[0] if len(norms) == 1 else torch.linalg.vector_norm(torch.stack(norms))


def _norms(group: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each tensor's L2 norm as a float32 scalar, accumulated in float32 so fp16 gradients do
    not overflow it; float64 and complex ones (which ``dtype=float32`` refuses) in their own
    precision, then cast."""
    try:
        return list(torch._foreach_norm(group, 2, dtype=torch.float32))
    except TypeError:  # older torch without the dtype argument
        return [n.float() for n in torch._foreach_norm(group, 2)]
    except RuntimeError:
        half = [g for g in group if g.dtype in _HALF]
        rest = [g for g in group if g.dtype not in _HALF]
        if not rest:  # not a dtype matter
            raise
        out = [n.float() for n in torch._foreach_norm(rest, 2)]
        return out + (list(torch._foreach_norm(half, 2, dtype=torch.float32)) if half else [])


_HALF = (torch.float16, torch.bfloat16)


def _check_optimizer(optimizer: Any) -> None:
    if isinstance(optimizer, MonitoredOptimizer):
        raise AutowarmError(
            "optimizer is already wrapped by autowarm.wrap(); wrap the bare optimizer once."
        )
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise AutowarmError(
            f"optimizer must be a torch.optim.Optimizer but got {type(optimizer).__name__}."
        )


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise AutowarmError(f"{name} must be a positive int but got {value!r}.")
    return value


def wrap(
    optimizer: torch.optim.Optimizer,
    *,
    actions: str | Mapping[str, str] | None = None,
    callback: Callable[[Event], Any] | None = None,
    console: Console | None = None,
    read_every: int = 16,
    warn_interval: int = 100,
    window: int = _DEFAULTS.window,
    min_history: int = _DEFAULTS.min_history,
    spike_zscore: float = _DEFAULTS.spike_zscore,
    spike_ratio: float = _DEFAULTS.spike_ratio,
    spike_hard_ratio: float = _DEFAULTS.spike_hard_ratio,
    spike_hard_zscore: float = _DEFAULTS.spike_hard_zscore,
    spread_floor: float = _DEFAULTS.spread_floor,
    divergence_window: int = _DEFAULTS.divergence_window,
    divergence_fraction: float = _DEFAULTS.divergence_fraction,
    divergence_rise: float = _DEFAULTS.divergence_rise,
    divergence_noise: float = _DEFAULTS.divergence_noise,
    stall_steps: int = _DEFAULTS.stall_steps,
    stall_tolerance: float = _DEFAULTS.stall_tolerance,
    amp_skip_patience: int = _DEFAULTS.amp_skip_patience,
) -> MonitoredOptimizer:
    """Wrap ``optimizer`` so that every ``step()`` is watched for instabilities.

    Add ``optimizer.report(loss)`` after ``loss.backward()``; the rest of the loop is unchanged.

    Args:
        optimizer: any ``torch.optim.Optimizer`` (not already wrapped).
        actions: what to do per event kind -- ``"record"``, ``"warn"`` (a rate-limited rich
            line), ``"skip"`` (do not apply this update; nonfinite/spike only) or ``"raise"``
            (:class:`autowarm.InstabilityError`). A string sets every instability kind; a
            mapping overrides the defaults ``{"nonfinite": "warn", "spike": "warn",
            "divergence": "warn", "stall": "warn", "amp_skip": "record"}``.
        callback: called with each :class:`Event` as it is recorded.
        console: rich console for warnings and the summary (default: stderr).
        read_every: read the steps' numbers (and judge them) every this many steps.
        warn_interval: at most one warning line per event kind per this many steps.
        window, min_history, ...: detection thresholds, see :mod:`autowarm.monitor._detect`.
    """
    keywords = dict(locals())  # the threshold keywords by name, before any other local
    # 1) what is being wrapped
    _check_optimizer(optimizer)
    # 2) options: the keywords are Thresholds' fields, one for one (tests/monitor checks it)
    thresholds = Thresholds(**{f.name: keywords[f.name] for f in dataclasses.fields(Thresholds)})
    if callback is not None and not callable(callback):
        raise AutowarmError(f"callback must be callable but got {type(callback).__name__}.")
    if console is not None and not isinstance(console, Console):
        raise AutowarmError(f"console must be a rich Console but got {type(console).__name__}.")
    monitor = Monitor(
        thresholds=thresholds,
        actions=actions,
        callback=callback,
        console=console,
        read_every=_positive_int("read_every", read_every),
        warn_interval=_positive_int("warn_interval", warn_interval),
    )
    return MonitoredOptimizer(optimizer, monitor)
