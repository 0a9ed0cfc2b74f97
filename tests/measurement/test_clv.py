"""BG/NBD and Gamma-Gamma fitted by maximum likelihood on the CDNOW sample as the ``lifetimes`` package ships it
(2,357 customers, 39 weeks of calibration), against the published figures: Fader, Hardie and Lee (2005), "Counting
your customers the easy way", r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4, and the expected 1.226
purchases in 39 weeks of their example customer; and the Gamma-Gamma note's p = 6.25, q = 3.74, gamma = 15.44."""

from __future__ import annotations

import csv
import importlib.metadata
from pathlib import Path

import numpy as np
import pytest

from core.measurement import clv


@pytest.fixture(scope="module")
def cdnow() -> dict[str, np.ndarray]:
    # Read the file the package ships without importing the package (it pulls in pandas and autograd).
    path = Path(
        str(
            importlib.metadata.distribution("lifetimes").locate_file(
                "lifetimes/datasets/cdnow_customers_summary_with_transactions.csv"
            )
        )
    )
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2357
    return {k: np.array([float(r[k]) for r in rows]) for k in ("x", "t_x", "T", "zbar")}


def test_bgnbd_matches_fader_hardie_lee_2005(cdnow: dict[str, np.ndarray]) -> None:
    fit = clv.fit_bgnbd(cdnow["x"], cdnow["t_x"], cdnow["T"])
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for name, value in published.items():
        assert getattr(fit, name) == pytest.approx(value, rel=0.01), name
    assert fit.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    assert fit.customers == 2357
    one = np.array([2.0]), np.array([30.43]), np.array([38.86])
    assert fit.expected_purchases(39, *one)[0] == pytest.approx(1.226, abs=0.001)
    assert 0 < fit.p_alive(*one)[0] < 1
    # a customer who never came back is alive with probability 1 under BG/NBD (no repeat purchase, no death seen)
    assert fit.p_alive(np.array([0.0]), np.array([0.0]), np.array([38.86]))[0] == 1.0
    # the longer since the last of many purchases, the less likely alive
    recent, stale = fit.p_alive(np.array([5.0, 5.0]), np.array([38.0, 10.0]), np.array([38.86, 38.86]))
    assert recent > stale


def test_gamma_gamma_matches_the_published_note(cdnow: dict[str, np.ndarray]) -> None:
    fit = clv.fit_gamma_gamma(cdnow["x"], cdnow["zbar"])
    assert fit.customers == 946  # the customers with repeat purchases
    assert (fit.p, fit.q, fit.gamma) == (
        pytest.approx(6.25, rel=0.01),
        pytest.approx(3.74, rel=0.01),
        pytest.approx(15.44, rel=0.01),
    )
    spend = fit.expected_spend(np.array([0.0, 1.0, 20.0]), np.array([0.0, 100.0, 100.0]))
    population = fit.p * fit.gamma / (fit.q - 1)
    assert spend[0] == pytest.approx(population)
    assert population < spend[1] < spend[2] < 100  # shrunk towards the mean, less so with more purchases


def test_a_fit_without_data_refuses() -> None:
    with pytest.raises(ValueError, match="repeat purchases"):
        clv.fit_gamma_gamma(np.array([0.0, 0.0]), np.array([0.0, 0.0]))
