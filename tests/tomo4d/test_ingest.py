"""Ingest of per-tilt 4D-STEM files reproduces the sparse counts they were written from."""

import h5py
import numpy as np
import pytest

from scopeflow.tomo4d.ingest import ingest
from scopeflow.tomo4d.options import IngestOptions, SimulateOptions
from scopeflow.tomo4d.simulate import simulate
from scopeflow.tomo4d.sparse import tilt_entries


def _dense(series, it, n_det):
    pattern, pixel, counts = tilt_entries(series, it)
    n_r, n_c = series["pattern_offset"].shape[1:]
    cube = np.zeros((n_r * n_c, n_det * n_det), np.uint16)
    cube[pattern, pixel] = counts
    return cube.reshape(n_r, n_c, n_det, n_det)


def test_hdf5_tilt_series_round_trip(tmp_path):
    so = SimulateOptions(
        seed=2, tilt_range_deg=(-2.0, 2.0), tilt_step_deg=2.0, scan_shape=(6, 6), detector_px=48
    )
    series = simulate([], so)
    paths = []
    for it in range(series.sizes["tilt"]):
        p = tmp_path / f"tilt{it}.h5"
        with h5py.File(p, "w") as f:
            f["data"] = _dense(series, it, 48)
        paths.append(str(p))
    opts = IngestOptions(
        paths=tuple(paths),
        format="hdf5",
        dataset="data",
        tilt_deg=tuple(float(t) for t in series["tilt"].values),
        tilt_axis_deg=so.tilt_axis_deg,
        beam_energy_ev=so.beam_energy_ev,
        scan_step_nm=so.scan_step_nm,
        k_pixel_inv_a=so.k_pixel_inv_a,
        convergence_mrad=so.convergence_mrad,
    )
    got = ingest([], opts)
    for var in ("pixel", "counts", "pattern_nnz", "pattern_offset"):
        assert np.array_equal(got[var].values, series[var].values), var
    assert got.attrs["k_pixel_inv_A"] == pytest.approx(so.k_pixel_inv_a)
    assert got.attrs["detector_shape"] == [48, 48]


def test_ingest_needs_one_angle_per_file():
    with pytest.raises(ValueError, match="tilt angles"):
        ingest([], IngestOptions(paths=("a.h5", "b.h5"), tilt_deg=(0.0,)))
