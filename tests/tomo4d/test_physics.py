"""Kinematic helpers, tilt geometry and lattice finding on synthetic reciprocal lattices."""

import numpy as np
import pytest

from scopeflow.optics.kinematic import (
    cell_matrix,
    cell_parameters,
    electron_form_factor,
    excitation_error,
    hkl_within,
    reciprocal_basis,
    structure_factors,
)
from scopeflow.tomo4d.geometry import ewald_vectors, tilt_rotations, to_specimen
from scopeflow.tomo4d.lattice import index_spots, reduce_basis, remove_supercell, restore_weak
from scopeflow.tomo4d.simulate import load_material


def test_brookite_cif_and_extinctions():
    s = load_material("brookite")
    assert len(s["elements"]) == 24  # Pbca, Z = 8 TiO2: 8 Ti + 16 O
    f = np.abs(structure_factors(s, np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]])))
    # Pbca glide/screw extinctions: h00 h odd, 0k0 k odd, 00l l odd vanish exactly
    assert np.all(f[:3] < 1e-9)
    assert f[3] > 1.0


def test_cspbbr3_structure_factor_closed_form():
    s = load_material("CsPbBr3")
    g = 1 / 5.874
    f = {el: electron_form_factor(el, np.array([g]))[0] for el in ("Cs", "Pb", "Br")}
    # F(100) of the ideal perovskite: Pb at 0, Cs at 1/2 (phase -1), Br at (1/2,0,0) (-1), 2x (+1)
    expected = f["Pb"] - f["Cs"] + f["Br"] * (-1 + 2)
    assert structure_factors(s, np.array([[1, 0, 0]]))[0].real == pytest.approx(expected, rel=1e-9)


def test_form_factor_forward_value():
    # f(0) is the sum of the Peng a_i (O: 1.983 A in Peng et al. 1996)
    assert electron_form_factor("O", np.array([0.0]))[0] == pytest.approx(1.9834, abs=1e-4)


def test_ewald_points_have_zero_excitation_error():
    lam = 0.0251
    kxy = np.array([[0.3, -0.2], [0.0, 0.7], [-0.5, 0.1]])
    g = ewald_vectors(kxy, lam)
    assert np.allclose(excitation_error(g, lam), 0.0, atol=1e-12)


def test_specimen_frame_round_trip():
    rot = tilt_rotations(np.array([-40.0, 0.0, 25.0]), 20.0)
    g_spec = np.array([[0.1, 0.2, 0.3], [0.3, -0.1, 0.05], [-0.2, 0.2, 0.1]])
    g_lab = np.einsum("nij,nj->ni", rot, g_spec)
    assert np.allclose(to_specimen(g_lab, np.arange(3), rot), g_spec)


def test_reduce_basis_finds_shortest_cell():
    basis = cell_matrix((5.0, 6.0, 7.0, 90.0, 90.0, 90.0))
    sheared = np.array([basis[0], basis[1] + 2 * basis[0], basis[2] - basis[1]])
    red = reduce_basis(sheared)
    assert np.allclose(np.sort(np.linalg.norm(red, axis=1)), [5.0, 6.0, 7.0])


def test_dps_indexes_a_noisy_wedge_of_brookite():
    rng = np.random.default_rng(3)
    cell = load_material("brookite")["cell"]
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    basis = cell_matrix(cell) @ q.T  # rotated real basis (rows) [A]
    recip = reciprocal_basis(basis)
    hkl = hkl_within(recip, 0.8)
    g = hkl @ recip
    # keep a +-30 deg wedge around the beam about x, as a tilt series would
    keep = np.abs(np.degrees(np.arctan2(g[:, 2], g[:, 1]))) % 180
    keep = (keep < 30) | (keep > 150)
    g = g[keep] + rng.normal(0, 5e-4, (keep.sum(), 3))  # 5e-4 1/A ~ 0.05 px centroid noise
    outliers = rng.uniform(-0.8, 0.8, (len(g) // 5, 3))  # 20 % spots from elsewhere
    gg = np.vstack([g, outliers])
    w = np.concatenate([np.ones(len(g)), 0.3 * np.ones(len(outliers))])
    found, _, inl = index_spots(gg, w, (3.0, 25.0), 1.5, 0.12)
    err = np.sort(cell_parameters(found)[:3]) / np.sort(cell[:3]) - 1
    # ~500 spots of 5e-4 1/A noise: least squares pins lengths far below 0.1 %
    assert np.abs(err).max() < 1e-3
    assert inl[: len(g)].mean() > 0.95


def _brookite_wedge(seed: int):
    """Noisy +-30 deg wedge of a randomly oriented brookite reciprocal lattice (n, 3) [1/A]."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    basis = cell_matrix(load_material("brookite")["cell"]) @ q.T
    recip = reciprocal_basis(basis)
    hkl = hkl_within(recip, 0.8)
    g = hkl @ recip
    keep = np.abs(np.degrees(np.arctan2(g[:, 2], g[:, 1]))) % 180
    keep = (keep < 30) | (keep > 150)
    return basis, g[keep] + rng.normal(0, 5e-4, (keep.sum(), 3))


@pytest.mark.parametrize("combo", [(0, 1, 2), (1, 2, 0), (2, 0, 1)])
def test_supercell_is_halved_to_the_cell(combo):
    basis, g = _brookite_wedge(5)
    i, j, k = combo
    # (b + c, b - c, a)-type supercell of twice the volume: it indexes every spot as well
    sup = np.array([basis[i] + basis[j], basis[i] - basis[j], basis[k]])
    found = remove_supercell(g, np.ones(len(g)), sup, 0.12, 3.0)
    assert abs(np.linalg.det(found)) == pytest.approx(abs(np.linalg.det(basis)), rel=1e-3)
    lens = np.sort(np.linalg.norm(found, axis=1))
    # 5e-4 1/A noise on ~500 spots: lengths to far below 0.1 %
    assert np.allclose(lens, np.sort(np.linalg.norm(basis, axis=1)), rtol=1e-3)


def test_true_cell_is_not_halved():
    basis, g = _brookite_wedge(6)
    found = remove_supercell(g, np.ones(len(g)), basis, 0.12, 3.0)
    # half vectors of the true cell leave half of the general reflections half-integer
    assert np.allclose(found, basis, atol=1e-2)


def _cubic_wedge(seed: int, n_outliers: int = 0):
    """Noisy +-30 deg wedge of a rotated 5.87 A cubic lattice (CsPbBr3), plus random spots."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    basis = 5.87 * q.T
    recip = reciprocal_basis(basis)
    hkl = hkl_within(recip, 0.8)
    g = hkl @ recip
    keep = np.abs(np.degrees(np.arctan2(g[:, 2], g[:, 1]))) % 180
    keep = (keep < 30) | (keep > 150)
    g = g[keep] + rng.normal(0, 5e-4, (keep.sum(), 3))
    return basis, np.vstack([g, rng.uniform(-0.8, 0.8, (n_outliers, 3))])


def test_subcell_of_the_strong_reflections_is_doubled_back():
    basis, g = _cubic_wedge(7)
    # DPS locked on the all-even reflections: the a/2 cell; the odd ones are real and fit
    found = restore_weak(g, basis / 2.0, 0.12)
    assert abs(np.linalg.det(found)) == pytest.approx(5.87**3, rel=1e-3)


def test_chance_spots_do_not_double_the_cell():
    basis, g = _cubic_wedge(8, n_outliers=150)
    # random spots indexed by a finer lattice by chance spread over the tolerance
    found = restore_weak(g, basis, 0.12)
    assert abs(np.linalg.det(found)) == pytest.approx(5.87**3, rel=1e-3)
