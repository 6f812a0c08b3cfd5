"""Instrument-file ingest: calibrations from metadata, config overrides, no silent guesses."""

import h5py
import numpy as np
import pytest
import tifffile
from rsciio.tiff import file_writer

from scopeflow.io import IngestError, length_to_nm, read_instrument_file, resolve_calibration


def _signal(data, scale_nm):
    axes = [
        {
            "name": "stack",
            "size": data.shape[0],
            "scale": 1.0,
            "offset": 0.0,
            "units": "",
            "navigate": True,
        },
        {
            "name": "y",
            "size": data.shape[1],
            "scale": scale_nm,
            "offset": 0.0,
            "units": "nm",
            "navigate": False,
        },
        {
            "name": "x",
            "size": data.shape[2],
            "scale": scale_nm,
            "offset": 0.0,
            "units": "nm",
            "navigate": False,
        },
    ]
    return {"data": data, "axes": axes, "metadata": {}, "original_metadata": {}}


def test_tiff_calibration_from_metadata_and_override(tmp_path, caplog):
    data = np.random.default_rng(0).poisson(10, (3, 16, 20)).astype("float32")
    file_writer(str(tmp_path / "s.tif"), _signal(data, 2.5))
    raw = read_instrument_file(tmp_path / "s.tif", "tiff")
    np.testing.assert_array_equal(raw.data, data)
    assert raw.metadata["pixel_size_nm"] == pytest.approx(2.5)
    cal = resolve_calibration(
        raw.metadata, {"energy_ev": 3e5}, ["pixel_size_nm", "energy_ev"], source=raw.source
    )
    assert cal == {"pixel_size_nm": pytest.approx(2.5), "energy_ev": 3e5}
    cal = resolve_calibration(
        raw.metadata, {"pixel_size_nm": 2.0}, ["pixel_size_nm"], source=raw.source
    )
    assert cal["pixel_size_nm"] == 2.0  # the config wins, and says so in the log
    assert "overridden by config" in caplog.text


def test_missing_calibration_is_refused_with_the_key_to_set(tmp_path):
    tifffile.imwrite(tmp_path / "bare.tif", np.zeros((2, 8, 8), "uint16"))
    raw = read_instrument_file(tmp_path / "bare.tif", "tiff")
    with pytest.raises(IngestError, match=r"bare\.tif.*\['energy_ev'\].*ltem\.ingest\.energy_ev"):
        resolve_calibration(
            raw.metadata,
            {"pixel_size_nm": 1.0},
            ["pixel_size_nm", "energy_ev"],
            source=raw.source,
            config_where="ltem.ingest",
        )


def test_hdf5_dataset_and_attrs(tmp_path):
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("entry/data", data=np.arange(24.0).reshape(2, 3, 4))
        d.attrs["pixel_size_nm"] = 1.5
        f["entry"].attrs["energy_ev"] = 17e3
    raw = read_instrument_file(path, "hdf5", dataset="entry/data")
    assert raw.data.shape == (2, 3, 4)
    assert raw.metadata["pixel_size_nm"] == 1.5 and raw.metadata["energy_ev"] == 17e3
    with pytest.raises(IngestError, match=r"say which HDF5 dataset.*entry/data"):
        read_instrument_file(path, "hdf5")
    with pytest.raises(IngestError, match="'nope' not found"):
        read_instrument_file(path, "hdf5", dataset="nope")


def test_bad_files_and_formats(tmp_path):
    with pytest.raises(IngestError, match="does not exist"):
        read_instrument_file(tmp_path / "none.tif", "tiff")
    (tmp_path / "junk.dm4").write_bytes(b"not a dm4 file at all")
    with pytest.raises(IngestError, match=r"junk\.dm4: cannot be read as dm4"):
        read_instrument_file(tmp_path / "junk.dm4", "dm4")
    with pytest.raises(IngestError, match="unknown format 'png'"):
        read_instrument_file(tmp_path / "junk.dm4", "png")


def test_length_units():
    assert length_to_nm(2.0, "Å") == pytest.approx(0.2)
    assert length_to_nm(1.0, "µm") == pytest.approx(1000.0)
    assert length_to_nm(1.0, "px") is None
