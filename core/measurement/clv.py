"""Buy-till-you-die models, pure: BG/NBD (Fader, Hardie and Lee 2005) and Gamma-Gamma spend (Fader, Hardie and
Lee 2005, "RFM and CLV"; Fader and Hardie's note on the Gamma-Gamma model), fitted by maximum likelihood (scipy).

Each customer is summarised as ``x`` (repeat purchases: active days after the first), ``t_x`` (time of the last
purchase since the first) and ``T`` (time since the first purchase), in weeks. Identical summaries are fitted once,
weighted by how many customers share them, so a million members with day-granular histories fit quickly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Probability that each customer is still active (has not "died")."""

        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
            odds = np.where(x > 0, np.exp(np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) + log_ratio), 0.0)
        return 1.0 / (1.0 + odds)

    def expected_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Expected purchases in the next ``t`` weeks, given each customer's history (FHL 2005, eq. 10)."""
        from scipy.special import hyp2f1  # loaded on first use: scipy adds about 90 MB to every API process

        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        head = (a + b + x - 1) / (a - 1)
        z = t / (alpha + T + t)
        tail = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
        return np.asarray(head * tail * self.p_alive(x, t_x, T))


def _bgnbd_nll(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, w: np.ndarray) -> float:
    from scipy.special import gammaln  # loaded on first use: scipy adds about 90 MB to every API process

    r, alpha, a, b = np.exp(log_params)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x), -np.inf)
    ll = a1 + a2 + np.logaddexp(a3, a4)
    total = float(np.sum(w * ll))
    return -total if np.isfinite(total) else 1e300


def summarise(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, ...]:
    """Unique ``(x, t_x, T)`` rows and how many customers share each."""
    rows = np.column_stack([x, t_x, T]).astype(float)
    unique, counts = np.unique(rows, axis=0, return_counts=True)
    return unique[:, 0], unique[:, 1], unique[:, 2], counts.astype(float)


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters (r, alpha, a, b). Raises ValueError when it does not converge."""
    from scipy.optimize import minimize  # loaded on first use: scipy adds about 90 MB to every API process

    ux, ut, uT, w = summarise(x, t_x, T)
    best = None
    for start in (np.zeros(4), np.log([0.5, 5.0, 1.0, 2.0])):
        result = minimize(
            _bgnbd_nll,
            start,
            args=(ux, ut, uT, w),
            method="Nelder-Mead",
            options={"maxiter": 4000, "xatol": 1e-7, "fatol": 1e-7},
        )
        if best is None or result.fun < best.fun:
            best = result
    assert best is not None
    if not np.isfinite(best.fun) or best.fun >= 1e299:
        raise ValueError("BG/NBD did not converge")
    r, alpha, a, b = (float(v) for v in np.exp(best.x))
    return BgNbd(r, alpha, a, b, -float(best.fun), int(w.sum()))


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    gamma: float
    log_likelihood: float
    customers: int

    def expected_spend(self, x: np.ndarray, mean_spend: np.ndarray) -> np.ndarray:
        """Expected spend per purchase given ``x`` repeat purchases averaging ``mean_spend`` (the population mean
        ``p gamma / (q - 1)`` where x = 0)."""
        p, q, g = self.p, self.q, self.gamma
        population = p * g / (q - 1) if q > 1 else np.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            given = (g + x * mean_spend) * p / (p * x + q - 1)
        return np.where(x > 0, given, population)


def _gg_nll(log_params: np.ndarray, x: np.ndarray, m: np.ndarray) -> float:
    from scipy.special import gammaln  # loaded on first use: scipy adds about 90 MB to every API process

    p, q, g = np.exp(log_params)
    ll = (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(g)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(g + x * m)
    )
    total = float(np.sum(ll))
    return -total if np.isfinite(total) else 1e300


def fit_gamma_gamma(x: np.ndarray, mean_spend: np.ndarray) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma parameters (p, q, gamma) from customers with repeat purchases and a positive
    mean spend per repeat purchase. Raises ValueError without enough data or when it does not converge."""
    from scipy.optimize import minimize  # loaded on first use: scipy adds about 90 MB to every API process

    keep = (x > 0) & (mean_spend > 0)
    if keep.sum() < 2:
        raise ValueError("Gamma-Gamma needs customers with repeat purchases")
    xs, ms = x[keep].astype(float), mean_spend[keep].astype(float)
    result = minimize(
        _gg_nll,
        np.zeros(3),
        args=(xs, ms),
        method="Nelder-Mead",
        options={"maxiter": 4000, "xatol": 1e-7, "fatol": 1e-7},
    )
    if not np.isfinite(result.fun) or result.fun >= 1e299:
        raise ValueError("Gamma-Gamma did not converge")
    p, q, g = (float(v) for v in np.exp(result.x))
    return GammaGamma(p, q, g, -float(result.fun), int(keep.sum()))
