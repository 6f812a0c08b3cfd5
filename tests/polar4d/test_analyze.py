"""Texture statistics and metrics against analytic answers."""

import numpy as np
import pytest

from scopeflow.polar4d.analyze import angle_to_111_deg, topological_density
from scopeflow.polar4d.metrics import displacement_metrics, polarization_uc_cm2


def test_angle_to_111():
    v = np.array([[1.0, 1.0, 1.0], [-2.0, 2.0, -2.0], [0.0, 0.0, 1.0]])
    # [001] is arccos(1/sqrt(3)) = 54.74 deg from every <111>
    np.testing.assert_allclose(angle_to_111_deg(v), [0.0, 0.0, 54.7356], atol=1e-3)


def test_skyrmion_has_unit_topological_charge():
    n = 96
    y, x = np.mgrid[:n, :n] - (n - 1) / 2
    r = np.hypot(x, y)
    theta = np.pi * np.clip(r / 30.0, 0, 1)  # core up, rim down: one full wrap of the sphere
    phi = np.arctan2(y, x)
    p = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1)
    # discretisation of a 30-px skyrmion on central differences: charge within a few %
    assert abs(topological_density(p).sum()) == pytest.approx(1.0, abs=0.05)
    assert abs(topological_density(np.ones((8, 8, 3))).sum()) < 1e-12


def test_metrics_and_polarization():
    true = np.array([[10.0, 0.0, 12.0], [0.0, -10.0, -15.0], [3.0, 3.0, 5.0]])
    pred = true + np.array([[1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, -1.0, 0.0]])
    pred[1, 2] = 4.0  # wrong sign where |dz| >= 10
    m = displacement_metrics(pred, true)
    assert m["inplane.rmse_pm"] == pytest.approx(1.0)
    assert m["dz.sign_accuracy"] == pytest.approx(0.5)  # 2 scored, 1 right
    assert m["dz.n_scored"] == 2
    # e * 7.2 * 1 pm / (3.947 Å)^3 = 1.876 µC/cm² (the "1 pm ~ 1.9 µC/cm²")
    assert polarization_uc_cm2(1.0, 3.947, 7.2) == pytest.approx(1.876, rel=1e-3)
