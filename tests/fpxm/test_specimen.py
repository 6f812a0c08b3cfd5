"""Domain structures and their elastic fields."""

import numpy as np

from scopeflow.fpxm import lgd, specimen


def test_compatible_laminate_is_stress_free():
    c = lgd.load_lgd()
    ps = lgd.spontaneous_polarization(298.15, c)
    p, info = specimen.domain_structure("ac_stripes", 128, 7.5, ps, needle=False, nanoregion=False)
    el = specimen.elastic_fields(p, 7.5, c)
    interior = specimen.interior_mask(p, info["features"], 6)
    # 45° a/c walls are strain-compatible: in domain interiors the elastic solution leaves the
    # c lattice at its eigenstrain Q11 Ps² (up to the finite-width walls' residue, ~1e-5)
    assert interior.sum() > 1000
    assert np.abs(el["strain"][1, 1][interior] - c["Q11"] * ps**2).max() < 3e-5


def test_elastic_equilibrium():
    c = lgd.load_lgd()
    ps = lgd.spontaneous_polarization(298.15, c)
    p, _ = specimen.domain_structure("ac_stripes", 64, 7.5, ps)
    el = specimen.elastic_fields(p, 7.5, c)
    e, e0 = el["strain"], el["eigenstrain"]
    c11, c12, c44 = c["c11"], c["c12"], c["c44"]
    dyy = e0[1, 1].mean() - e0[1, 1]
    s_xx = c11 * (e[0, 0] - e0[0, 0]) + c12 * (e[1, 1] - e0[2, 2]) + c12 * dyy
    s_zz = c12 * (e[0, 0] - e0[0, 0]) + c11 * (e[1, 1] - e0[2, 2]) + c12 * dyy
    s_xz = 2 * c44 * (e[0, 1] - e0[0, 2])
    k = 2 * np.pi * np.fft.fftfreq(64, 7.5)
    kz, kx = np.meshgrid(k, k, indexing="ij")
    f = np.fft.fft2
    div_x = 1j * kx * f(s_xx) + 1j * kz * f(s_xz)
    div_z = 1j * kx * f(s_xz) + 1j * kz * f(s_zz)
    scale = np.abs(kx * f(c11 * e0[0, 0])).max()
    # spectral solution: the divergence of the stress vanishes to rounding below Nyquist (the
    # Nyquist row/column of a derivative of a real field is not representable on an even grid)
    inner = (np.abs(kx) < np.abs(k).max()) & (np.abs(kz) < np.abs(k).max())
    assert np.abs(div_x[inner]).max() < 1e-9 * scale
    assert np.abs(div_z[inner]).max() < 1e-9 * scale
