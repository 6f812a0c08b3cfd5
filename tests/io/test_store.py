"""Store contract: round trip, laziness, atomic writes, clear errors (DESIGN.md §2)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from scopeflow.io import (
    SCHEMA_VERSION,
    StoreError,
    has_ground_truth,
    make_provenance,
    read_store,
    temp_sibling,
    write_store,
)


def _series(n=3, size=16, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.poisson(50.0, (n, size, size)).astype("float32")
    ds = xr.Dataset(
        {
            "image": (("defocus", "row", "col"), image, {"units": "counts"}),
            "true_phase": (("row", "col"), rng.normal(size=(size, size)).astype("float32")),
        },
        coords={
            "defocus": ("defocus", np.array([-1e6, 0, 1e6]), {"units": "nm"}),
            "row": ("row", np.arange(size) * 2.5, {"units": "nm"}),
            "col": ("col", np.arange(size) * 2.5, {"units": "nm"}),
        },
        attrs={"energy_ev": 200e3, "ground_truth": {"cs_mm": 1.0}},
    )
    return ds


def test_round_trip_keeps_dims_coords_units_attrs(tmp_path):
    ds = _series()
    prov = make_provenance(technique="ltem", stage="simulate", params={"seed": 1})
    path = write_store(ds, tmp_path / "s.zarr", "ltem.series", provenance=prov)
    back = read_store(path, "ltem.series", dims={"image": ("defocus", "row", "col")})
    assert back["image"].dims == ("defocus", "row", "col")
    np.testing.assert_array_equal(back["image"].values, ds["image"].values)
    np.testing.assert_array_equal(back["defocus"].values, ds["defocus"].values)
    for name in ("defocus", "row", "col"):
        assert back[name].attrs["units"] == "nm"
    assert back["image"].attrs["units"] == "counts"
    assert back.attrs["energy_ev"] == 200e3
    assert back.attrs["scopeflow"] == {"kind": "ltem.series", "schema_version": SCHEMA_VERSION}
    p = back.attrs["provenance"]
    assert p["stage"] == "simulate" and p["parameters"] == {"seed": 1}
    assert p["scopeflow_version"]
    assert has_ground_truth(back)
    json.dumps(back.attrs)  # attrs stay plain JSON


def test_provenance_fingerprints_inputs(tmp_path):
    a = write_store(_series(seed=1), tmp_path / "a.zarr", "ltem.series")
    b = write_store(_series(seed=2), tmp_path / "b.zarr", "ltem.series")
    pa = make_provenance(technique="t", stage="s", params={}, inputs=[a])["inputs"][0]
    pb = make_provenance(technique="t", stage="s", params={}, inputs=[b])["inputs"][0]
    assert pa["path"] == str(a) and pa["method"] == "content"
    # different content, different fingerprint; same content, same fingerprint
    assert pa["sha256"] != pb["sha256"]
    again = make_provenance(technique="t", stage="s", params={}, inputs=[a])["inputs"][0]
    assert again["sha256"] == pa["sha256"]


def test_lazy_read_computes_nothing(tmp_path):
    path = write_store(_series().chunk({"defocus": 1}), tmp_path / "s.zarr", "ltem.series")
    computed = []

    class Count(dask.callbacks.Callback):
        def _start(self, dsk):
            computed.append(len(dsk))

    with Count():
        ds = read_store(path, "ltem.series")
        lazy = ds["image"] * 2 + 1  # building a graph is not computing it
    assert computed == []
    assert isinstance(ds["image"].data, da.Array)
    assert ds["image"].data.chunks[0] == (1, 1, 1)  # chunks as written, one frame each
    assert float(lazy.isel(defocus=0, row=0, col=0)) == 2 * float(ds["image"][0, 0, 0]) + 1


def test_wrong_kind_is_a_clear_error(tmp_path):
    path = write_store(_series(), tmp_path / "s.zarr", "ltem.series")
    with pytest.raises(StoreError, match=r"s\.zarr: store kind is 'ltem\.series', expected 'x\.y'"):
        read_store(path, "x.y")


def test_wrong_dims_missing_and_corrupt_stores(tmp_path):
    path = write_store(_series(), tmp_path / "s.zarr", "ltem.series")
    with pytest.raises(StoreError, match=r"'image' has dims \('defocus', 'row', 'col'\), expected"):
        read_store(path, dims={"image": ("frame", "row", "col")})
    with pytest.raises(StoreError, match="does not exist"):
        read_store(tmp_path / "nope.zarr")
    (tmp_path / "corrupt.zarr").mkdir()
    (tmp_path / "corrupt.zarr" / "zarr.json").write_text("{not json")
    with pytest.raises(StoreError, match=r"corrupt\.zarr: cannot be read"):
        read_store(tmp_path / "corrupt.zarr")
    plain = tmp_path / "plain.zarr"
    _series().to_zarr(plain, zarr_format=3, consolidated=False)
    with pytest.raises(StoreError, match=r"plain\.zarr: not a scopeflow store"):
        read_store(plain)


def test_coordinate_without_units_is_refused(tmp_path):
    ds = _series()
    ds["row"].attrs.pop("units")
    with pytest.raises(StoreError, match="'row' has no 'units'"):
        write_store(ds, tmp_path / "s.zarr", "ltem.series")
    assert not (tmp_path / "s.zarr").exists()


def test_failed_write_leaves_nothing_and_keeps_old_store(tmp_path):
    path = write_store(_series(seed=1), tmp_path / "s.zarr", "ltem.series")
    before = read_store(path)["image"].values

    def boom(block):
        raise RuntimeError("disk full")

    bad = _series(seed=2).chunk({"defocus": 1})
    bad["image"] = bad["image"].copy(data=bad["image"].data.map_blocks(boom, dtype="float32"))
    with pytest.raises(StoreError, match="writing the store failed: disk full"):
        write_store(bad, path, "ltem.series")
    np.testing.assert_array_equal(read_store(path)["image"].values, before)
    assert list(tmp_path.glob(".s.zarr.tmp-*")) == []


def test_killed_writer_leaves_no_store(tmp_path):
    """A writer killed mid-write (SIGKILL: no cleanup) leaves no store that looks complete."""
    script = textwrap.dedent(
        f"""
        import time, numpy as np, dask.array as da, xarray as xr
        from scopeflow.io import write_store

        def slow(block):
            time.sleep(0.5)
            return block

        data = da.ones((40, 32, 32), chunks=(1, 32, 32), dtype="float32").map_blocks(slow)
        ds = xr.Dataset({{"image": (("frame", "row", "col"), data)}})
        print("writing", flush=True)
        write_store(ds, {str(tmp_path / "big.zarr")!r}, "defects.movie")
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    deadline = time.time() + 30
    while not list(tmp_path.glob(".big.zarr.tmp-*")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # some chunks are on disk now
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert not (tmp_path / "big.zarr").exists()
    assert list(tmp_path.glob(".big.zarr.tmp-*"))  # the partial write is only a hidden temp
    # the next writer clears the stale temporary sibling
    write_store(_series(), tmp_path / "big.zarr", "ltem.series")
    assert list(tmp_path.glob(".big.zarr.tmp-*")) == []
    assert temp_sibling(tmp_path / "big.zarr").name.startswith(".big.zarr.tmp-")


def test_hidden_files_in_a_store_are_ignored(tmp_path):
    """Snakemake writes `.snakemake_timestamp` into directory() outputs; reads must not choke."""
    path = write_store(_series(), tmp_path / "s.zarr", "ltem.series")
    (path / ".snakemake_timestamp").touch()
    assert read_store(path, "ltem.series")["image"].shape == (3, 16, 16)
