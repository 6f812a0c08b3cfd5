"""abTEM patterns obey the symmetry and axis conventions the network and augmentation assume."""

import numpy as np
import pytest
import torch

from scopeflow.polar4d.cbed import CellSpec, cbed_series
from scopeflow.polar4d.model import SYMMETRY_OPS, apply_op, invert_op_vectors, op_vectors
from scopeflow.polar4d.simulate import bin_patterns, pacbed

SPEC = CellSpec(material="SrTiO3")  # no A-site disorder: the crystal has exact 4mm symmetry


def _pattern(disp):
    p = cbed_series(SPEC, disp, [4], [[0.5, 0.5]])[0, 0]
    return bin_patterns(p, 3)


@pytest.mark.slow  # abTEM start-up (numba compilation) ~20 s
def test_mirror_and_transpose_act_on_dx_dy_and_dz_is_visible():
    plus = _pattern((12.0, 0.0, 0.0))
    minus = _pattern((-12.0, 0.0, 0.0))
    dy = _pattern((0.0, 12.0, 0.0))
    dz = _pattern((0.0, 0.0, 12.0))
    zero = _pattern((0.0, 0.0, 0.0))

    def rel(a, b):
        return np.abs(a - b).sum() / np.abs(b).sum()

    # a mirror x -> -x of the crystal with the probe on the Ti column maps +dx onto -dx and
    # flips k_row; multislice is exact up to float32 FFT round-off (~1e-6 relative)
    assert rel(plus[::-1], minus) < 1e-4
    assert rel(plus.T, dy) < 1e-4
    # a 12 pm in-plane shift changes the pattern by ~10 %; the mirror must not be trivially true
    assert rel(plus, minus) > 1e-2
    # finite projection: a displacement along the beam changes the pattern (~1 % at 12 pm)
    assert rel(dz, zero) > 1e-3


def test_symmetry_ops_invert():
    v = torch.tensor([[3.0, -5.0]])
    x = torch.arange(9.0).reshape(1, 3, 3)
    for op in SYMMETRY_OPS:
        assert torch.allclose(invert_op_vectors(op_vectors(v, op), op), v)
        assert apply_op(x, op).shape == x.shape
    assert len({tuple(apply_op(x, op).ravel().tolist()) for op in SYMMETRY_OPS}) == 8


def test_binning_keeps_zero_angle_centred():
    p = np.zeros((196, 196))
    p[98, 98] = 1.0  # abTEM puts zero angle at n // 2
    b = bin_patterns(p, 3)
    assert b.shape[0] % 2 == 1 and b[b.shape[0] // 2, b.shape[1] // 2] == 1.0


@pytest.mark.slow
def test_debye_waller_damps_high_angle_bragg_scattering():
    # a coarse grid (32 px per cell, detector to 50 mrad) keeps the structure-factor sum cheap
    spec = CellSpec(material="SrTiO3", gpts_per_cell=32, max_angle_mrad=50.0)
    static = cbed_series(spec, (0, 0, 0), [4], [[0.5, 0.5]], thermal="static")[0, 0]
    dw = cbed_series(spec, (0, 0, 0), [4], [[0.5, 0.5]], thermal="debye_waller")[0, 0]
    k = static.shape[-1]
    r = np.hypot(*np.meshgrid(np.arange(k) - k // 2, np.arange(k) - k // 2, indexing="ij"))
    outer = r * 1.247 > 30  # beyond 30 mrad (1.247 mrad per pixel for a 4-cell SrTiO3 tile)
    # beyond 30 mrad (s = g / 2 > 0.76 1/Å) the Debye-Waller amplitude factor exp(-B s^2) with
    # B = 8 pi^2 sigma^2 ~ 0.5 Å^2 is <= 0.75, so Bragg intensities drop by ~40 %; the DW model
    # has no diffuse background to replace them (5 % margin for dynamical redistribution)
    assert dw[outer].sum() < 0.95 * static[outer].sum()


@pytest.mark.slow
def test_position_averaged_pattern_is_invariant_to_the_scan_offset():
    # coarse grid (32 px per cell, detector to 60 mrad) keeps it cheap; tilt and defocus on
    spec = CellSpec(material="SrTiO3", gpts_per_cell=32, max_angle_mrad=60.0)
    g = np.arange(5) / 5
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    p = [
        cbed_series(spec, (8, -5, 6), [8], grid + off, tilt_mrad=(0.5, -0.3), defocus_A=10.0)
        for off in ((0.0, 0.0), (0.37, 0.81))
    ]

    def rel(a, b):
        return np.abs(a - b).sum() / np.abs(b).sum()

    # single probes a fraction of a cell apart see different disk overlaps (tens of %)
    assert rel(p[0][:, 0], p[1][:, 0]) > 0.1
    # the pattern is periodic in the probe position with harmonics only up to
    # |g| <= 2 alpha / lambda (order 3 of this cell, ~1e-3 of order 4 from the soft aperture
    # edge): a 5 x 5 grid averages all of them away, leaving float32 round-off (~1e-6)
    assert rel(pacbed(p[0]), pacbed(p[1])) < 1e-4
