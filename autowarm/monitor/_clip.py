"""The user's own gradient clipping, seen through: the norm *before* clipping, for free.

Almost every real loop clips: nanoGPT calls ``torch.nn.utils.clip_grad_norm_(params, 1.0)``,
the HF Trainer clips through accelerate's ``clip_grad_norm_``, Lightning through its precision
plugin -- and all of them end in ``torch.nn.utils.clip_grad_norm_`` or, in accelerate >= 1.10
and recent transformers, in its two halves ``get_total_norm`` + ``clip_grads_with_norm_``.
After it the gradients are clipped: a x100 gradient spike reads as a norm of 1.0. But
``clip_grad_norm_`` *returns* the total norm it measured before clipping, and
``clip_grads_with_norm_`` is *given* it, so the first :func:`autowarm.wrap` replaces both (in
``torch.nn.utils`` and ``torch.nn.utils.clip_grad``, where code looks them up at call time)
with wrappers that keep that tensor for the next ``step()`` of the optimizer whose gradients
they clipped. The monitor then records the pre-clip norm and skips its own norm pass: no second
pass, no host sync (the norm stays a device tensor).

A name bound before the first ``wrap()`` (``from torch.nn.utils import clip_grad_norm_`` at
the top of a script that wraps later) keeps the original: the monitor then sees the clipped
norm, as before; ``optimizer.clip_grad_norm_(max_norm)`` is the explicit alternative.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from typing import Any

import torch

_lock = threading.Lock()
_original: Callable[..., torch.Tensor] | None = None
# the last clip: (ids of the parameters that had gradients, the pre-clip total norm, max_norm)
_last = threading.local()


def install() -> None:
    """Tap ``torch.nn.utils.clip_grad_norm_`` (once per process; idempotent)."""
    global _original
    with _lock:
        if _original is not None:
            return
        from torch.nn.utils import clip_grad

        _original = clip_grad.clip_grad_norm_
        tapped = _tap(_original)
        clip_grad.clip_grad_norm_ = tapped  # type: ignore[assignment]
        torch.nn.utils.clip_grad_norm_ = tapped  # type: ignore[assignment]
        with_norm = getattr(torch.nn.utils, "clip_grads_with_norm_", None)  # torch >= 2.6
        if with_norm is not None:
            torch.nn.utils.clip_grads_with_norm_ = _tap_with_norm(with_norm)  # type: ignore[attr-defined]


def _tap(original: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    @functools.wraps(original)
    def clip_grad_norm_(
        parameters: torch.Tensor | Iterable[torch.Tensor],
        max_norm: float,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        # a generator is consumed by the clip: keep the list to know what was clipped
        params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
        total = original(params, max_norm, *args, **kwargs)
        norm_type = kwargs.get("norm_type", args[0] if args else 2.0)
        if float(norm_type) == 2.0:  # the monitor's norm is the L2 one
            _last.clip = ({id(p) for p in params if p.grad is not None}, total, float(max_norm))
        return total

    clip_grad_norm_.__autowarm_tap__ = True  # type: ignore[attr-defined]
    return clip_grad_norm_


def _tap_with_norm(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def clip_grads_with_norm_(
        parameters: torch.Tensor | Iterable[torch.Tensor],
        max_norm: float,
        total_norm: torch.Tensor,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
        ids = {id(p) for p in params if p.grad is not None}
        original(params, max_norm, total_norm, *args, **kwargs)
        # one clip may come in parts (accelerate clips each device mesh's parameters with the
        # same total): the parts of one total are one clip
        last = getattr(_last, "clip", None)
        if last is not None and last[1] is total_norm:
            ids |= last[0]
        _last.clip = (ids, total_norm, float(max_norm))

    clip_grads_with_norm_.__autowarm_tap__ = True  # type: ignore[attr-defined]
    return clip_grads_with_norm_


def take(grad_param_ids: Callable[[], set[int]]) -> tuple[torch.Tensor, float] | None:
    """(pre-clip norm, max_norm) of the last clip, if it clipped exactly this optimizer's
    gradients (``grad_param_ids()``: the ids of its parameters that have one); consumed either
    way, so a clip is never reused by a later step."""
    clip = getattr(_last, "clip", None)
    if clip is None:
        return None
    _last.clip = None
    ids, total, max_norm = clip
    return (total, max_norm) if ids == grad_param_ids() else None
