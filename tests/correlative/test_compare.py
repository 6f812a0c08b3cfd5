"""Correlative comparison on truth maps of the shared specimen (no simulator noise)."""

import numpy as np
import pytest
import xarray as xr

from scopeflow.correlative.compare import compare
from scopeflow.correlative.options import CompareOptions, FiguresOptions
from scopeflow.correlative.plots import figures
from scopeflow.fpxm.specimen import domain_structure
from scopeflow.io import specimen as shared
from scopeflow.polar4d.options import SimulateOptions
from scopeflow.polar4d.simulate import specimen_texture

SPECIMEN = "stripe_domains"
E = 1.602176634e-19  # C
A_BST = 3.947e-10  # m, Ba0.5Sr0.5TiO3 (polar4d's default material)


def _pmap(disp_pm, rows_nm, cols_nm, born=7.2):
    """A polar4d.pmap-like store from a displacement map (P = e Z* u / a^3, in µC/cm²)."""
    pol = E * born * disp_pm * 1e-12 / A_BST**3 * 100.0
    return xr.Dataset(
        {
            "polarization": (
                ("scan_row", "scan_col", "component"),
                pol.astype(np.float32),
                {"units": "µC/cm²"},
            )
        },  # fmt: skip
        coords={
            "scan_row": ("scan_row", rows_nm, {"units": "nm"}),
            "scan_col": ("scan_col", cols_nm, {"units": "nm"}),
            "component": ("component", ["dx", "dy", "dz"]),
        },
    )


def _analysis(p_c_m2, coord_nm, sign=None):
    """An fpxm.analysis-like store (one field state) from a (3, n, n) map in C/m²."""
    n = p_c_m2.shape[-1]
    return xr.Dataset(
        {
            "polarization": (
                ("efield", "component", "obj_row", "obj_col"),
                p_c_m2[None],
                {"units": "C/m^2"},
            ),  # fmt: skip
            "polarization_sign": (
                ("obj_row", "obj_col"),
                np.zeros((n, n), np.int8) if sign is None else sign,
            ),
        },
        coords={
            "efield": ("efield", [0.0], {"units": "MV/m"}),
            "component": ("component", ["x", "y", "z"]),
            "obj_row": ("obj_row", coord_nm, {"units": "nm"}),
            "obj_col": ("obj_col", coord_nm, {"units": "nm"}),
        },
    )


@pytest.fixture(scope="module")
def truth():
    """Both simulators' own rasterisations of the specimen (fpxm 128 x 7.5 nm, polar4d 60 nm)."""
    sim = SimulateOptions(specimen=SPECIMEN, scan_shape=(4, 16), scan_step_nm=60.0)
    disp, coord, cells, _ = specimen_texture(sim)
    n, pix = 128, 7.5
    p_fp, _ = domain_structure(SPECIMEN, n, pix, 0.26, needle=False, nanoregion=False)
    fp_coord = (np.arange(n) - n / 2) * pix
    return {"disp": disp, "coord": coord, "cells": cells, "p_fp": p_fp, "fp_coord": fp_coord}


def test_specimen_file_and_frames():
    spec = shared.load_specimen(SPECIMEN)
    x = np.array([-360.0, -120.0, 0.0, 120.0])  # domain centres and a wall (at 0) along cols
    p = shared.polarization_map(spec, np.zeros(1), x)
    # domain centres are 8 wall widths from a wall: tanh(8) = 1 - 2e-7 of the domain's P
    np.testing.assert_allclose(p[2, 0, [0, 1, 3]], [-26.0, 26.0, -26.0], atol=1e-4)
    assert abs(p[2, 0, 2]) < 1e-9  # the 180° (Ising) wall: P passes through zero
    assert spec["lamella_thickness_nm"] == 16.0 and spec["film_thickness_nm"] == 960.0
    v = np.arange(3.0)
    np.testing.assert_array_equal(shared.crystal_frame(shared.beam_frame(v)), v)


def test_both_simulators_build_the_same_specimen(truth):
    # polar4d: P -> Ti off-centring with Z* = 7.2 in BST: 26 µC/cm² is 26 / 1.883 = 13.8 pm
    pm_per_uc = 1.0 / (E * 7.2 * 1e-12 / A_BST**3 * 100.0)
    disp, coord = truth["disp"], truth["coord"]
    p4_pz = disp[..., 0] / pm_per_uc  # dx (along rows) is crystal P_z
    # the 60 nm probe grid falls on fpxm object pixels (i = 8 j + 4), so both see the same P
    i_r = np.rint(coord[0] / 7.5 + 64).astype(int)
    i_c = np.rint(coord[1] / 7.5 + 64).astype(int)
    fp_pz = truth["p_fp"][2][np.ix_(i_r, i_c)] * 100.0
    np.testing.assert_allclose(p4_pz, fp_pz, atol=1e-9)
    assert np.abs(p4_pz).max() == pytest.approx(26.0, abs=1e-3)
    assert np.all(disp[..., 1:] == 0)  # P_x = P_y = 0 in 180° c stripes
    assert truth["cells"] == 40  # 16 nm lamella / 0.3947 nm, rounded to even cells


def test_identical_truth_maps_agree_exactly(truth):
    pmap = _pmap(truth["disp"], *truth["coord"])
    ana = _analysis(truth["p_fp"], truth["fp_coord"])
    ds = compare([pmap, ana], CompareOptions(specimen=SPECIMEN))
    m = ds.attrs["metrics"]
    # float32 storage of the pmap: relative rounding 6e-8 of 26 µC/cm²
    assert m["magnitude.rmse_uC_cm2"] < 1e-4
    assert m["vector.rmse_uC_cm2"] < 1e-4
    assert m["direction.agreement"] == 1.0 and m["axis.agreement"] == 1.0
    assert m["n_points"] == 4 * 16  # the coarse polar4d grid lies inside the fpxm field
    assert m["grid.step_cols_nm"] == pytest.approx(60.0)
    assert m["polar4d.lamella_fraction"] == pytest.approx(16.0 / 960.0)
    assert m["fpxm.sign_known_fraction"] == 0.0
    assert "blind.fpxm" in m and "blind.polar4d" in m


def test_sign_flipped_domain_agrees_in_magnitude_not_in_direction(truth):
    # what strain alone gives: every c- domain drawn along +G (P_z > 0)
    p_fp = truth["p_fp"].copy()
    p_fp[2] = np.abs(p_fp[2])
    pmap = _pmap(truth["disp"], *truth["coord"])
    opts = CompareOptions(min_magnitude=5.0)
    m = compare([pmap, _analysis(p_fp, truth["fp_coord"])], opts).attrs["metrics"]
    assert m["magnitude.rmse_uC_cm2"] < 1e-4
    assert m["axis.agreement"] == 1.0
    pz = truth["disp"][..., 0]
    scored = np.abs(pz) * 26.0 / np.abs(pz).max() >= opts.min_magnitude
    assert m["direction.agreement"] == pytest.approx(np.mean(pz[scored] > 0))
    assert 0.3 < m["direction.agreement"] < 0.7  # equal-width c+ and c- stripes
    # the signed-vector error is 2 |P| in the flipped domain
    assert m["vector.rmse_uC_cm2"] > 20.0


def test_sign_known_points_are_reported(truth):
    sign = np.sign(truth["p_fp"][2]).astype(np.int8)
    pmap = _pmap(truth["disp"], *truth["coord"])
    m = compare([pmap, _analysis(truth["p_fp"], truth["fp_coord"], sign)], CompareOptions())
    m = m.attrs["metrics"]
    # the 60 nm probe grid never hits a wall centre, where sign(P_z) = 0
    assert m["fpxm.sign_known_fraction"] == 1.0
    assert m["direction.agreement_sign_known"] == 1.0


def test_common_grid_option_interpolates(truth):
    pmap = _pmap(truth["disp"], *truth["coord"])
    ana = _analysis(truth["p_fp"], truth["fp_coord"])
    ds = compare([pmap, ana], CompareOptions(grid_step_nm=30.0))
    assert float(ds["col"].diff("col").mean()) == pytest.approx(30.0)
    m = ds.attrs["metrics"]
    # mid-way points interpolate linearly across the 15 nm walls on the 60 nm polar4d grid;
    # inside domains both maps are uniform, so at least the domain interiors agree
    assert m["axis.agreement"] > 0.7


def test_bad_inputs_are_named(truth):
    pmap = _pmap(truth["disp"], *truth["coord"])
    far = _analysis(truth["p_fp"], truth["fp_coord"] + 1e4)
    with pytest.raises(ValueError, match="do not overlap"):
        compare([pmap, far], CompareOptions())
    ana = _analysis(truth["p_fp"], truth["fp_coord"])
    del ana["polarization"].attrs["units"]
    with pytest.raises(ValueError, match="fpxm.analysis polarization has no 'units'"):
        compare([pmap, ana], CompareOptions())
    bad = pmap.copy()
    bad["scan_col"].attrs["units"] = "furlong"
    with pytest.raises(ValueError, match="units 'furlong'"):
        compare([bad, _analysis(truth["p_fp"], truth["fp_coord"])], CompareOptions())


def test_specimen_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        shared.load_specimen("no_such_specimen")
    f = tmp_path / "s.yaml"
    f.write_text(
        "geometry: stripes\nwall_normal: col\nfield_of_view: [960, 960]\nperiod: {value: 480, "
        "units: nm}\n"
    )
    with pytest.raises(ValueError, match="units are mandatory"):
        shared.load_specimen(str(f))
    with pytest.raises(ValueError, match="fpxm object grid covers 480 nm"):
        domain_structure(SPECIMEN, 64, 7.5, 0.26, needle=False, nanoregion=False)
    with pytest.raises(ValueError, match="more than the field of view"):
        specimen_texture(SimulateOptions(specimen=SPECIMEN, scan_shape=(2, 40), scan_step_nm=60))


def test_figures(truth, tmp_path):
    pmap = _pmap(truth["disp"], *truth["coord"])
    ds = compare([pmap, _analysis(truth["p_fp"], truth["fp_coord"])], CompareOptions())
    paths = figures([ds], FiguresOptions(dpi=50), tmp_path)
    assert [p.name for p in paths] == ["comparison.png", "scatter.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_row_stripes_and_si_units(tmp_path):
    f = tmp_path / "rows.yaml"
    f.write_text(
        "geometry: stripes\nwall_normal: row\n"
        "field_of_view: {value: [0.4, 0.2], units: um}\nperiod: {value: 200, units: nm}\n"
        "polarization: {value: [[0.1, 0, 0], [-0.1, 0, 0]], units: C/m2}\n"
        "wall_width: {value: 2, units: nm}\nfilm_thickness: {value: 400, units: nm}\n"
        "lamella_thickness: {value: 20, units: nm}\n"
    )
    spec = shared.load_specimen(str(f))
    np.testing.assert_array_equal(spec["field_of_view_nm"], [400.0, 200.0])
    p = shared.polarization_map(spec, np.array([-50.0, 50.0]), np.array([-80.0, 0.0, 80.0]))
    # 0.1 C/m² = 10 µC/cm², constant along columns, alternating along rows (50 nm from walls)
    np.testing.assert_allclose(p[0], [[10.0] * 3, [-10.0] * 3], atol=1e-9)
    assert np.all(p[1:] == 0)
