"""Learning-curve fits: a saturating power law y = c - a * n^(-b), or a log-linear fallback.

Bounds: a >= 0, B_MIN <= b <= B_MAX, c <= C_MAX (ROUGE-L cannot pass 100). Points are
weighted by 1 / (their bootstrap variance), floored at SIGMA_FLOOR so a point that scored
the same on every replicate does not take all the weight.

Two paths solve the same bounded weighted least-squares problem:
- `fit_point` (one curve, the reported parameters): scipy.optimize.curve_fit, started
  from the vectorised solution; when it fails or b ends on a bound the power law is not
  identified and the curve is the log-linear fit y = p + q * ln(n), labelled as such;
- `fit_power_law` (many curves x bootstrap replicates at once, for the intervals): for a
  fixed b the model is linear in (c, a), so (c, a) has a closed form under the bounds; b
  is searched on a log grid, then refined by golden-section search between the grid
  neighbours of the best grid point. numpy only; tests check it agrees with curve_fit.

x is scaled by each curve's largest size inside the fits (better conditioning); the
parameters returned are in the original units.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

POWER_LAW = "power law"
LOG_LINEAR = "log-linear"
C_MAX = 100.0
B_MIN, B_MAX = 0.02, 3.0
B_GRID = np.geomspace(B_MIN, B_MAX, 32)
REFINE_STEPS = 3
SIGMA_FLOOR = 0.5  # ROUGE-L points
_CHUNK_FLOATS = 4_000_000  # bounds the (curves x grid x replicates) blocks held at once


@dataclass(frozen=True)
class Params:
    """Curve parameters, arrays of one shape (one entry per curve and replicate).

    power law: y = c - a * n^(-b); log-linear: y = c + a * ln(n) (b unused, NaN).
    """

    kind: str
    c: np.ndarray
    a: np.ndarray
    b: np.ndarray

    def take(self, index) -> Params:
        return Params(self.kind, self.c[index], self.a[index], self.b[index])


def weights_from(samples: np.ndarray) -> np.ndarray:
    """1 / variance of each point over bootstrap replicates (axis -2), floored; (..., P)."""
    variance = np.nanvar(samples, axis=-2)
    return 1.0 / np.maximum(variance, SIGMA_FLOOR**2)


def predict(params: Params, n: np.ndarray | float) -> np.ndarray:
    """y at n; n broadcasts against the parameters."""
    n = np.asarray(n, dtype=np.float64)
    if params.kind == POWER_LAW:
        with np.errstate(over="ignore", invalid="ignore"):
            return params.c - params.a * n ** (-params.b)
    return params.c + params.a * np.log(n)


def n_for_target(params: Params, target: np.ndarray | float) -> np.ndarray:
    """The n at which the curve reaches `target`; inf when it never does (ceiling c at or below it)."""
    target = np.asarray(target, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if params.kind == POWER_LAW:
            gap = params.c - target
            n = (params.a / gap) ** (1.0 / params.b)
            n = np.where(gap > 0, n, np.inf)
            return np.where((params.a <= 0) & (gap > 0), 1.0, n)  # flat curve above the target
        n = np.exp((target - params.c) / params.a)
        return np.where(params.a > 0, n, np.where(params.c >= target, 1.0, np.inf))


# --- the vectorised power law -------------------------------------------------------------


def _solve(sw, sz, szz, szy, wy, yy) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best (c, d = -a, weighted SSE) of y = c + d z for fixed z, under d <= 0 and c <= C_MAX.

    Inputs are weighted sums over the points (sw = sum w, sz = sum w z, szz = sum w z^2,
    szy = sum w z y, wy = sum w y, yy = sum w y^2), broadcastable. The minimum of this convex
    quadratic over {d <= 0, c <= C_MAX} is the unconstrained one when feasible, else on an
    edge: d = 0 (c = the weighted mean, clipped) or c = C_MAX (d clipped at 0).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_y, mean_z = wy / sw, sz / sw
        syy_c = yy - wy * mean_y
        szz_c = szz - sz * mean_z
        szy_c = szy - sz * mean_y
        d_free = szy_c / szz_c
        c_free = mean_y - d_free * mean_z
        sse_free = np.where((d_free <= 0) & (c_free <= C_MAX), syy_c - szy_c * d_free, np.inf)
        sse_free = np.where(np.isfinite(sse_free), sse_free, np.inf)
        c_flat = np.minimum(mean_y, C_MAX)
        sse_flat = syy_c + sw * (mean_y - c_flat) ** 2
        sze = szy - C_MAX * sz
        d_top = np.minimum(sze / szz, 0.0)
        sse_top = (yy - 2 * C_MAX * wy + C_MAX * C_MAX * sw) - sze * d_top
    sse_edge = np.minimum(sse_flat, sse_top)
    free, flat = sse_free <= sse_edge, sse_flat <= sse_top
    c = np.where(free, c_free, np.where(flat, c_flat, C_MAX))
    d = np.where(free, d_free, np.where(flat, 0.0, d_top))
    return c, d, np.minimum(sse_free, sse_edge)


def _grid_sse(log_xs, w, y, wy, yy, sw) -> np.ndarray:
    """Profile SSE at every b of B_GRID: (G, K, R); the only place with a (G, K, R) block."""
    z = np.exp(-B_GRID[None, :, None] * log_xs[:, None, :])  # (G, K, P)
    wz = w[:, None, :] * z
    sz, szz = wz.sum(-1), (wz * z).sum(-1)
    szy = np.matmul(wz, np.swapaxes(y, 1, 2))  # (G, K, R)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_y = (wy / sw[:, None])[:, None, :]
        mean_z = (sz / sw[:, None])[:, :, None]
        szy_c = szy - sz[:, :, None] * mean_y
        szz_c = (szz - sz * sz / sw[:, None])[:, :, None]
        d_free = szy_c / szz_c
        syy_c = (yy - wy * wy / sw[:, None])[:, None, :]
        ok = (d_free <= 0) & (mean_y - d_free * mean_z <= C_MAX)
        sse_free = np.where(ok, syy_c - szy_c * d_free, np.inf)
        sse_flat = syy_c + sw[:, None, None] * np.maximum(mean_y - C_MAX, 0) ** 2
        sze = szy - C_MAX * sz[:, :, None]
        sse_top = (yy - 2 * C_MAX * wy + C_MAX * C_MAX * sw[:, None])[:, None, :] - sze * np.minimum(
            sze / szz[:, :, None], 0.0
        )
    return np.minimum(np.nan_to_num(sse_free, nan=np.inf), np.minimum(sse_flat, sse_top))


def _profile_at(log_b, log_xs, w, y_points, wy, yy, sw):
    """(c, d, sse) at one b per (curve, replicate): log_b (G, R); y_points (G, P, R)."""
    b = np.exp(log_b)
    sz, szz, szy = np.zeros_like(b), np.zeros_like(b), np.zeros_like(b)
    for p in range(log_xs.shape[1]):  # a few points: sums over (G, R) planes beat a reduce over a short axis
        z = np.exp(-b * log_xs[:, p, None])
        wz = w[:, p, None] * z
        sz += wz
        szz += wz * z
        szy += wz * y_points[:, p]
    return _solve(sw[:, None], sz, szz, szy, wy, yy)


def _vertex(h, f_minus, f_0, f_plus) -> np.ndarray:
    """Offset of the parabola's vertex through (-h, f_minus), (0, f_0), (h, f_plus); 0 if not convex."""
    with np.errstate(divide="ignore", invalid="ignore"):
        curvature = f_minus - 2 * f_0 + f_plus
        step = h * (f_minus - f_plus) / (2 * curvature)
    return np.where((curvature > 0) & np.isfinite(step), np.clip(step, -h, h), 0.0)


def fit_power_law(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[Params, np.ndarray]:
    """Weighted bounded fits of y = c - a n^-b for G curves x R replicates at once.

    x: (G, P) sizes (> 0; padding points get weight 0), y: (G, R, P), w: (G, P).
    Returns Params of shape (G, R) and the weighted sum of squared residuals (G, R).
    b: the best point of B_GRID, refined by a parabola through its neighbours, then by
    REFINE_STEPS parabolic steps on log b (each a quarter of the last), each kept only where
    it lowers the SSE.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    scale = np.max(np.where(w > 0, x, 0), axis=-1, keepdims=True)
    log_xs = np.log(np.where(w > 0, x / scale, 1.0))
    n_curves, n_reps, n_points = y.shape
    sw = w.sum(-1)
    wy = np.einsum("gp,grp->gr", w, y)
    yy = np.einsum("gp,grp->gr", w, y * y)
    log_grid = np.log(B_GRID)
    log_b = np.empty((n_curves, n_reps))
    chunk = max(1, _CHUNK_FLOATS // (len(B_GRID) * n_reps))
    for start in range(0, n_curves, chunk):
        part = slice(start, start + chunk)
        sse = _grid_sse(log_xs[part], w[part], y[part], wy[part], yy[part], sw[part])
        k = np.argmin(sse, axis=1)
        interior = (k > 0) & (k < len(B_GRID) - 1)
        at = np.take_along_axis
        f0 = at(sse, k[:, None], 1)[:, 0]
        fm = at(sse, np.maximum(k - 1, 0)[:, None], 1)[:, 0]
        fp = at(sse, np.minimum(k + 1, len(B_GRID) - 1)[:, None], 1)[:, 0]
        h = log_grid[1] - log_grid[0]
        log_b[part] = log_grid[k] + np.where(interior, _vertex(h, fm, f0, fp), 0.0)
    args = (log_xs, w, np.ascontiguousarray(np.swapaxes(y, 1, 2)), wy, yy, sw)
    c, d, sse = _profile_at(log_b, *args)
    h = (log_grid[1] - log_grid[0]) / 4
    for _ in range(REFINE_STEPS):
        f_minus = _profile_at(np.maximum(log_b - h, log_grid[0]), *args)[2]
        f_plus = _profile_at(np.minimum(log_b + h, log_grid[-1]), *args)[2]
        trial = np.clip(log_b + _vertex(h, f_minus, sse, f_plus), log_grid[0], log_grid[-1])
        c_t, d_t, sse_t = _profile_at(trial, *args)
        better = sse_t < sse
        log_b, c, d, sse = (
            np.where(better, new, old) for new, old in ((trial, log_b), (c_t, c), (d_t, d), (sse_t, sse))
        )
        h /= 4
    b = np.exp(log_b)
    return Params(POWER_LAW, c, -d * scale**b, b), sse


def fit_log_linear(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> Params:
    """Weighted least squares y = c + a ln n for (G, P) x, (G, R, P) y, (G, P) w; Params (G, R)."""
    u = np.log(np.where(w > 0, x, 1.0))
    sw = w.sum(-1, keepdims=True)
    su = (w * u).sum(-1, keepdims=True)
    suu = (w * u * u).sum(-1, keepdims=True)
    wy = np.einsum("gp,grp->gr", w, y)
    wuy = np.einsum("gp,grp->gr", w * u, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (sw * wuy - su * wy) / (sw * suu - su * su)
        c = (wy - a * su) / sw
    return Params(LOG_LINEAR, c, a, np.full_like(c, np.nan))


# --- one curve with curve_fit -----------------------------------------------------------------


@dataclass(frozen=True)
class PointFit:
    params: Params  # scalars (shape ())
    reason: str | None  # why the power law was not used; None when it was


def _power(xs, c, a, b):
    return c - a * xs ** (-b)


def _power_jacobian(xs, c, a, b):
    z = xs ** (-b)
    return np.stack([np.ones_like(xs), -z, a * z * np.log(xs)], axis=1)


def fit_point(x: np.ndarray, y: np.ndarray, w: np.ndarray, start: Params | None = None) -> PointFit:
    """One curve (x, y, w of shape (P,)): curve_fit's bounded power law, else log-linear.

    curve_fit starts from `start` (scalars; default: fit_power_law's solution for these points)."""
    if start is None:
        start = fit_power_law(x[None], y[None, None], w[None])[0].take((0, 0))
    scale = float(np.max(x))
    c0, b0 = float(start.c), float(np.clip(start.b, B_MIN, B_MAX))
    a0 = max(float(start.a) / scale**b0, 1e-9)
    reason = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", OptimizeWarning)
            (c, a_scaled, b), _ = curve_fit(
                _power,
                x / scale,
                y,
                p0=[min(c0, C_MAX), a0, b0],
                sigma=1 / np.sqrt(w),
                absolute_sigma=True,
                bounds=([-np.inf, 0.0, B_MIN], [C_MAX, np.inf, B_MAX]),
                method="trf",
                jac=_power_jacobian,
                maxfev=2000,
            )
    except (RuntimeError, ValueError, OptimizeWarning) as error:
        reason = f"curve_fit did not converge ({str(error).splitlines()[0]})"
    else:
        if not np.all(np.isfinite([c, a_scaled, b])):
            reason = "curve_fit returned non-finite parameters"
        elif a_scaled <= 1e-9 * max(1.0, abs(c)):
            reason = "flat curve (a = 0): the exponent b is not identified"
        elif b <= B_MIN * 1.001 or b >= B_MAX * 0.999:
            reason = f"exponent b ended on its bound ({b:.3g}, bounds {B_MIN}-{B_MAX})"
    if reason is None:
        return PointFit(Params(POWER_LAW, np.asarray(c), np.asarray(a_scaled * scale**b), np.asarray(b)), None)
    fallback = fit_log_linear(x[None], y[None, None], w[None]).take((0, 0))
    return PointFit(fallback, reason)
