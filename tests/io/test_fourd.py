"""4D-STEM readers: each format opens lazily as the canonical (scan_row, scan_col, k_row, k_col)."""

import dask
import h5py
import numpy as np
import pytest

from scopeflow.io.fourd import EMPAD_FRAME, open_4dstem, write_mib
from scopeflow.io.ingest import IngestError

CAL = {"beam_energy_eV": 3e5, "scan_step_nm": 0.2, "k_pixel_mrad": 1.5}


def _cube(shape=(5, 4, 16, 12), seed=0):
    return np.random.default_rng(seed).poisson(20, shape).astype("float32")


class _CountingScheduler:
    """A dask scheduler that records whether anything was computed."""

    def __init__(self):
        self.calls = 0

    def __call__(self, dsk, keys, **kwargs):
        self.calls += 1
        return dask.get(dsk, keys, **kwargs)


def _assert_lazy_and_equal(ds, truth, chunk_rows):
    sched = _CountingScheduler()
    with dask.config.set(scheduler=sched):
        assert ds["data"].dims == ("scan_row", "scan_col", "k_row", "k_col")
        chunks = ds["data"].data.chunks
        assert sched.calls == 0  # opening computed nothing
    # chunked by scan rows only: the three other axes are single whole chunks
    assert all(len(c) == 1 for c in chunks[1:])
    assert max(chunks[0]) == min(chunk_rows, truth.shape[0])
    np.testing.assert_array_equal(ds["data"].values, truth)


def test_plain_hdf5_dataset_with_config_calibration(tmp_path):
    cube = _cube()
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["entry/cube"] = cube
    ds = open_4dstem(tmp_path / "a.h5", "hdf5", dataset="entry/cube", calibration=CAL, chunk_rows=2)
    _assert_lazy_and_equal(ds, cube, 2)
    assert ds.attrs["k_pixel_mrad"] == 1.5
    assert ds["k_row"].attrs["units"] == "mrad"
    # scan step 0.2 nm -> the 5th row sits at 0.8 nm
    assert ds["scan_row"].values[-1] == pytest.approx(0.8)


def test_py4dstem_emd_layout_calibration_from_dims(tmp_path):
    cube = _cube()
    with h5py.File(tmp_path / "p.emd", "w") as f:
        g = f.create_group("root/datacube")
        g.attrs["emd_group_type"] = 1
        g["data"] = cube
        for i, (n, step, units) in enumerate(
            [(5, 2.0, "Å"), (4, 2.0, "Å"), (16, 0.8, "mrad"), (12, 0.8, "mrad")], start=1
        ):
            g[f"dim{i}"] = np.arange(n) * step
            g[f"dim{i}"].attrs["units"] = units
        f["root/metadata"] = 0
        f["root/metadata"].attrs["beam_energy"] = 2e5
    ds = open_4dstem(tmp_path / "p.emd", "emd", chunk_rows=3)
    _assert_lazy_and_equal(ds, cube, 3)
    assert ds.attrs["scan_step_nm"] == pytest.approx(0.2)  # 2 Å
    assert ds.attrs["k_pixel_mrad"] == pytest.approx(0.8)
    assert ds.attrs["beam_energy_eV"] == pytest.approx(2e5)
    # the config overrides the file
    ds = open_4dstem(tmp_path / "p.emd", "emd", calibration={"beam_energy_eV": 3e5})
    assert ds.attrs["beam_energy_eV"] == 3e5


def test_missing_calibration_names_the_config_key(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["cube"] = _cube()
    with pytest.raises(IngestError, match=r"ingest\.calibration\.scan_step_nm"):
        open_4dstem(tmp_path / "a.h5", "hdf5", dataset="cube", calibration={"beam_energy_eV": 3e5})
    with pytest.raises(IngestError, match=r"ingest\.calibration\.k_pixel_mrad"):
        open_4dstem(
            tmp_path / "a.h5",
            "hdf5",
            dataset="cube",
            calibration={"beam_energy_eV": 3e5, "scan_step_nm": 0.1},
        )
    with pytest.raises(IngestError, match="ingest.dataset"):
        open_4dstem(tmp_path / "a.h5", "hdf5", calibration=CAL)
    with pytest.raises(IngestError, match="4-D"):
        with h5py.File(tmp_path / "b.h5", "w") as f:
            f["img"] = np.zeros((4, 4))
        open_4dstem(tmp_path / "b.h5", "hdf5", dataset="img", calibration=CAL)


def test_empad_raw_drops_metadata_rows(tmp_path):
    full = _cube((3, 2, *EMPAD_FRAME), seed=1)
    full.astype("<f4").tofile(tmp_path / "scan.raw")
    ds = open_4dstem(
        tmp_path / "scan.raw", "empad", scan_shape=(3, 2), calibration=CAL, chunk_rows=1
    )
    _assert_lazy_and_equal(ds, full[:, :, :128, :], 1)
    with pytest.raises(IngestError, match="ingest.scan_shape"):
        open_4dstem(tmp_path / "scan.raw", "empad", scan_shape=(2, 2), calibration=CAL)
    with pytest.raises(IngestError, match="ingest.scan_shape"):
        open_4dstem(tmp_path / "scan.raw", "empad", calibration=CAL)


def test_mib_lazy_read(tmp_path):
    cube = _cube((3, 4, 16, 16), seed=2)
    write_mib(tmp_path / "scan.mib", cube)
    ds = open_4dstem(tmp_path / "scan.mib", "mib", scan_shape=(3, 4), calibration=CAL, chunk_rows=2)
    _assert_lazy_and_equal(ds, cube, 2)
    assert ds.attrs["beam_energy_eV"] == 3e5


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(IngestError, match="unknown 4D-STEM format"):
        open_4dstem(tmp_path / "x", "tiff")
    with pytest.raises(IngestError, match="does not exist"):
        open_4dstem(tmp_path / "x.h5", "hdf5")
