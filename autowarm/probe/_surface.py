"""The probe landscape as a smooth surface: a weighted quadratic fit of the trials' scores over
(log peak LR, warmup fraction), and where it is lowest.

Why: the soft-tie centre (:mod:`._recommend`, step 4) is a weighted *mean* of the sampled LRs.
A landscape that falls off steeply on the hot side (instability) and gently on the cold side
pulls that mean to the cold side of the real optimum (0.65-0.72x the best trial's LR on the
scripts of issue 11). The vertex of a local quadratic is not pulled by the asymmetry of where
trials were sampled, and uses every trial's score, not one lucky one.

The fit is local: each trial weighs its soft-tie weight (near-best trials count, far ones
hardly); the minimum is searched only inside the near-best trials' box, so it never
extrapolates beyond what was measured.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: grid points per axis when searching the fitted surface's minimum inside the box
_GRID = 41


def _features(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(x), x, x * x, w, w * w, x * w], axis=1)


def minimum(
    log_lrs: Sequence[float],
    warmups: Sequence[float],
    scores: Sequence[float],
    weights: Sequence[float],
    box: tuple[tuple[float, float], tuple[float, float]],
) -> tuple[float, float] | None:
    """(log LR, warmup fraction) where the weighted quadratic fit is lowest inside ``box``
    (((x_lo, x_hi), (w_lo, w_hi))); None when the fit is underdetermined."""
    x, w = np.asarray(log_lrs, float), np.asarray(warmups, float)
    y, wt = np.asarray(scores, float), np.asarray(weights, float)
    if x.size < 8 or np.count_nonzero(wt > 1e-3) < 6:
        return None
    sw = np.sqrt(wt)
    coef, *_ = np.linalg.lstsq(_features(x, w) * sw[:, None], y * sw, rcond=None)
    (x_lo, x_hi), (w_lo, w_hi) = box
    gx = np.linspace(x_lo, x_hi, _GRID)
    gw = np.linspace(w_lo, w_hi, _GRID) if w_hi > w_lo else np.array([w_lo])
    mx, mw = np.meshgrid(gx, gw)
    fit = _features(mx.ravel(), mw.ravel()) @ coef
    if not np.all(np.isfinite(fit)):
        return None
    i = int(np.argmin(fit))
    return float(mx.ravel()[i]), float(mw.ravel()[i])
