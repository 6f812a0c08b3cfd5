"""Landau-Ginzburg-Devonshire energy of BaTiO3 (Li, Cross, Chen 2005) and its inversion."""

import numpy as np
import torch

from scopeflow.fpxm import lgd

T25 = 298.15


def test_spontaneous_polarization_and_tetragonality():
    c = lgd.load_lgd("BaTiO3")
    ps = lgd.spontaneous_polarization(T25, c)
    # Li et al. 2005 fit Ps(25 °C) = 0.26 C/m² (their Fig. 1); the 8th-order polynomial has a
    # single minimum, so the bounded 1-D search is exact to its tolerance
    assert abs(ps - 0.26) < 0.005
    e0 = lgd.eigenstrain(np.array([0.0, 0.0, ps]), c)
    c_over_a = (1 + e0[2, 2]) / (1 + e0[0, 0]) - 1
    # measured c/a - 1 of BaTiO3 at room temperature is ~1e-2; the potential gives
    # (Q11 - Q12) Ps² = 0.134 * 0.0676 = 9.06e-3
    assert abs(c_over_a - 9.0e-3) < 3e-4


def test_tetragonal_is_the_ground_state_at_25c():
    c = lgd.load_lgd()
    best = {}
    for name, direction in {"T": (0, 0, 1), "O": (0, 1, 1), "R": (1, 1, 1)}.items():
        d = torch.tensor(direction, dtype=torch.float64)
        d = d / torch.linalg.norm(d)
        p = torch.linspace(0, 0.4, 4001, dtype=torch.float64)[:, None] * d
        best[name] = float(lgd.landau_energy(p, T25, c).min())
    assert best["T"] < best["O"] < best["R"] < 0


def test_local_equilibrium_returns_ps_for_stress_free_strain():
    c = lgd.load_lgd()
    ps = lgd.spontaneous_polarization(T25, c)
    eps = torch.full((3,), c["Q11"] * ps**2, dtype=torch.float64)
    start = torch.tensor(
        [[0.0, 0.0, 0.2], [0.01, 0.0, 0.3], [0.0, 0.0, -0.25]], dtype=torch.float64
    )
    p = lgd.local_equilibrium(start, T25, c, strain_g=eps)
    # the stress-free strain is the minimum of the elastic term, where f_L is minimal at Ps;
    # the sign of the start is kept (strain is even in P)
    assert torch.allclose(p.abs()[:, 2], torch.full((3,), ps, dtype=torch.float64), atol=1e-7)
    assert torch.allclose(p[:, :2], torch.zeros(3, 2, dtype=torch.float64), atol=1e-7)
    assert p[2, 2] < 0


def test_local_equilibrium_linear_response():
    c = lgd.load_lgd()
    ps = lgd.spontaneous_polarization(T25, c)
    de = 1e-4
    eps = torch.tensor([c["Q11"] * ps**2 + de], dtype=torch.float64)
    p = lgd.local_equilibrium(
        torch.tensor([[0.0, 0.0, ps]], dtype=torch.float64), T25, c, strain_g=eps
    )
    # linearising f_L'(P) = (2 Q11 P / s11)(eps - Q11 P²) about Ps:
    # dP/deps = (2 Q11 Ps / s11) / (f_L''(Ps) + 4 Q11² Ps² / s11)
    s11 = lgd.compliances(c)[0]
    pp = torch.tensor([[0.0, 0.0, ps]], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(lgd.landau_energy(pp, T25, c).sum(), pp, create_graph=True)
    f2 = float(torch.autograd.grad(g[0, 2], pp)[0][0, 2])
    slope = (2 * c["Q11"] * ps / s11) / (f2 + 4 * c["Q11"] ** 2 * ps**2 / s11)
    # the response is linear to O(de) relative: 1e-4 strain -> < 1 % curvature error
    assert abs(float(p[0, 2] - ps) / (slope * de) - 1) < 0.01


def test_directional_compliance_along_axis_is_s11():
    c = lgd.load_lgd()
    assert np.isclose(lgd.directional_compliance((0, 0, 1), c), lgd.compliances(c)[0])
