"""Image metrics on maps with known answers."""

import numpy as np
import pytest

from scopeflow.optics.metrics import frc, frc_resolution, ncc, rel_l2_meanfree, scale_factor


def test_scaled_map():
    rng = np.random.default_rng(0)
    b = rng.standard_normal((32, 32))
    a = 1.1 * b + 5.0  # a constant offset is invisible to mean-free metrics
    assert rel_l2_meanfree(a, b) == pytest.approx(0.1)
    assert scale_factor(a, b) == pytest.approx(1.1)
    assert ncc(a, b) == pytest.approx(1.0)


def test_frc_identical_and_noise():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((64, 64))
    q, c = frc(a, a, 2.0)
    assert np.allclose(c, 1.0)
    assert frc_resolution(q, c) == pytest.approx(1 / q[-1])
    q, c = frc(a, rng.standard_normal((64, 64)), 2.0)
    # independent white noise: FRC ~ 0 +- 1/sqrt(ring pixels) < 0.5 at every ring but the first
    assert frc_resolution(q, c) > 4.0
