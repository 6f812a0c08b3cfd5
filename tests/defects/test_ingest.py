"""Ingest of files the test writes: calibrations read, missing ones refused."""

import numpy as np
import pytest
import tifffile

from scopeflow.defects.ingest import ingest_movie
from scopeflow.defects.options import IngestOptions


@pytest.fixture
def data():
    return np.random.default_rng(0).poisson(5, (3, 32, 40)).astype(np.float32)


def test_imagej_tiff_calibration(tmp_path, data):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.02, 1 / 0.02),
        metadata={"unit": "nm", "finterval": 0.5, "axes": "TYX"},
    )
    ds = ingest_movie([], IngestOptions(path=str(path)))
    assert ds["image"].dims == ("frame", "row", "col")
    assert ds.attrs["pixel_size"] == pytest.approx(0.2)  # 0.02 nm = 0.2 Å
    assert ds.attrs["frame_time"] == pytest.approx(0.5)
    np.testing.assert_array_equal(ds["image"].values, data)
    assert "true_class" not in ds


def test_uncalibrated_tiff_is_refused_then_overridden(tmp_path, data):
    path = tmp_path / "raw.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    with pytest.raises(ValueError, match="pixel_size"):
        ingest_movie([], IngestOptions(path=str(path)))
    with pytest.raises(ValueError, match="frame_time"):
        ingest_movie([], IngestOptions(path=str(path), pixel_size=0.2))
    ds = ingest_movie([], IngestOptions(path=str(path), pixel_size=0.2, frame_time=1.5, dose=20.0))
    assert ds.attrs["frame_time"] == 1.5 and ds.attrs["dose"] == 20.0


def test_emd_calibration(tmp_path, data):
    from rsciio.emd import file_writer

    axes = [
        {"size": 3, "scale": 250.0, "units": "ms", "name": "t", "offset": 0, "navigate": True},
        {"size": 32, "scale": 0.02, "units": "nm", "name": "y", "offset": 0, "navigate": False},
        {"size": 40, "scale": 0.02, "units": "nm", "name": "x", "offset": 0, "navigate": False},
    ]
    path = tmp_path / "movie.emd"
    file_writer(
        str(path),
        {
            "data": data,
            "axes": axes,
            "original_metadata": {},
            "metadata": {"General": {"title": "m"}, "Signal": {}},
        },
    )
    ds = ingest_movie([], IngestOptions(path=str(path)))
    assert ds.attrs["pixel_size"] == pytest.approx(0.2)
    assert ds.attrs["frame_time"] == pytest.approx(0.25)


def test_missing_file_and_nan(tmp_path, data):
    with pytest.raises(FileNotFoundError):
        ingest_movie([], IngestOptions(path=str(tmp_path / "nope.tif")))
    bad = data.copy()
    bad[0, 0, 0] = np.nan
    path = tmp_path / "nan.tif"
    tifffile.imwrite(path, bad, photometric="minisblack")
    with pytest.raises(ValueError, match="NaN"):
        ingest_movie([], IngestOptions(path=str(path), pixel_size=0.2, frame_time=1.0))
