"""Ingest of HDF5 and TIFF stacks; stage table and options."""

import h5py
import numpy as np
import pytest
import tifffile

from scopeflow.fpxm.ingest import ingest
from scopeflow.fpxm.options import IngestOptions, SimulateOptions
from scopeflow.fpxm.stages import STAGES
from scopeflow.io.ingest import IngestError
from scopeflow.options import from_dict, json_schema

CAL = {
    "energy_ev": 17000.0,
    "reflection": [0, 0, 2],
    "pixel_size_nm": 7.5,
    "upsampling": 4,
    "na_rms": 3.11e-4,
    "aperture_mrad": 1.03,
}


def write_h5(path, with_cal=True):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        d = f.create_dataset("/entry/data/data", data=rng.poisson(100, (9, 32, 32)))
        if with_cal:
            for k, v in CAL.items():
                d.attrs[k] = v
        f["/entry/sample/pupil_shift_mrad"] = np.arange(18.0).reshape(9, 2) * 0.1


def test_ingest_hdf5(tmp_path):
    path = tmp_path / "stack.h5"
    write_h5(path)
    ds = ingest([], IngestOptions(path=str(path)))
    assert ds["image"].dims == ("efield", "shot", "row", "col")
    assert ds["image"].shape == (1, 9, 32, 32)
    assert ds.attrs["reflection"] == [0, 0, 2]
    assert ds["pupil_shift"].values[3, 1] == pytest.approx(0.7)
    assert ds["row"].attrs["units"] == "nm"
    assert ds.attrs["g_magnitude_rad_per_nm"] == pytest.approx(2 * np.pi * 2 / 0.4)


def test_ingest_refuses_missing_calibration(tmp_path):
    path = tmp_path / "bare.h5"
    write_h5(path, with_cal=False)
    with pytest.raises(IngestError, match="energy_ev"):
        ingest([], IngestOptions(path=str(path)))
    # config overrides complete it
    ds = ingest(
        [],
        IngestOptions(
            path=str(path),
            energy_ev=17000.0,
            reflection=(0, 0, 2),
            pixel_size_nm=7.5,
            upsampling=4,
            na_rms=3.11e-4,
            aperture_mrad=1.03,
        ),
    )
    assert ds.attrs["energy_ev"] == 17000.0


def test_ingest_tiff_needs_shifts(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.ones((4, 16, 16), np.float32), photometric="minisblack")
    kw = {
        "path": str(path),
        "energy_ev": 17000.0,
        "reflection": (0, 0, 2),
        "pixel_size_nm": 7.5,
        "upsampling": 4,
        "na_rms": 3.11e-4,
        "aperture_mrad": 1.03,
    }
    with pytest.raises(IngestError, match="shifts"):
        ingest([], IngestOptions(**kw))
    ds = ingest([], IngestOptions(**kw, shifts_mrad=tuple(np.zeros(8))))
    assert ds.sizes["shot"] == 4


def test_stage_table_and_schema():
    assert set(STAGES) == {"simulate", "ingest", "reconstruct", "analyze", "figures"}
    assert STAGES["reconstruct"].inputs == ("fpxm.stack",)
    assert STAGES["analyze"].kind == "fpxm.analysis"
    for st in STAGES.values():
        schema = json_schema(st.options)
        assert schema["additionalProperties"] is False


def test_simulate_options_validation():
    with pytest.raises(ValueError):
        from_dict(SimulateOptions, {"structure": "bubbles"})
    with pytest.raises(ValueError, match="same length"):
        STAGES["simulate"].func([], SimulateOptions(n_object=64, zernike_rad=(0.1,)))
