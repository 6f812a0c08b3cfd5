"""Position-averaged (per-unit-cell) inference: cell size from the scan, block sums, maps."""

import numpy as np
import pytest
import xarray as xr

from scopeflow.polar4d.infer import block_sum, cell_block
from scopeflow.polar4d.options import AnalyzeOptions, InferOptions, OpticsOptions, SimulateOptions
from scopeflow.polar4d.simulate import simulate_scan
from scopeflow.polar4d.stages import STAGES


def test_cell_block_from_lattice_and_step():
    scan = xr.Dataset(attrs={"scan_step_nm": 0.3905 / 5})
    assert cell_block(scan, 3.905) == 5
    # 0.39 nm / 0.1 nm = 3.9 probes per cell: no whole number of probes tiles a cell
    with pytest.raises(ValueError, match="integer number of probes"):
        cell_block(xr.Dataset(attrs={"scan_step_nm": 0.1}), 3.905)
    with pytest.raises(ValueError, match="scan_step_nm"):
        cell_block(xr.Dataset(), 3.905)


def test_block_sum_drops_incomplete_cells():
    a = np.arange(5 * 4 * 2).reshape(5, 4, 2)
    b = block_sum(a, 2)
    assert b.shape == (2, 2, 2)
    np.testing.assert_array_equal(b[1, 0], a[2:4, 0:2].sum(axis=(0, 1)))


@pytest.mark.slow
def test_cell_averaged_map(model):
    # 2 x 2 cells, 2 x 2 probes per cell (16 patterns); the CI model is single-probe, so this
    # checks the mapping, not the accuracy of a position-averaged model (bench/polar4d.py)
    opts = SimulateOptions(
        optics=OpticsOptions(material="SrTiO3"),  # the session model's optics
        scan_shape=(2, 2),
        thickness_cells=6,
        probes_per_cell=2,
        dose=1e4,
    )
    scan = simulate_scan([], opts)
    assert scan["data"].shape[:2] == (4, 4)
    pmap = STAGES["infer"].func([scan, model], InferOptions(cell_average="on", device="cpu"))
    assert pmap["disp_pm"].shape == (2, 2, 3) and pmap.attrs["cell_block"] == 2
    np.testing.assert_allclose(
        pmap["scan_row"].values, scan["scan_row"].values.reshape(2, 2).mean(1)
    )
    # the same as mapping a scan whose patterns were summed per cell by hand
    summed = scan["data"].values.reshape(2, 2, 2, 2, *scan["data"].shape[-2:]).sum(axis=(1, 3))
    by_hand = xr.Dataset(
        {"data": (scan["data"].dims, summed)},
        coords={"scan_row": [0.0, 1.0], "scan_col": [0.0, 1.0]},
        attrs=scan.attrs,
    )
    ref = STAGES["infer"].func([by_hand, model], InferOptions(cell_average="off", device="cpu"))
    np.testing.assert_allclose(pmap["disp_pm"].values, ref["disp_pm"].values, atol=1e-3)
    ana = STAGES["analyze"].func([scan, pmap, model], AnalyzeOptions())
    m = ana.attrs["metrics"]
    assert m["infer.input"].startswith("position-averaged over 2x2")
    # the texture is constant within a cell, so the per-cell truth is each cell's displacement
    truth = scan["true_disp_pm"].values[::2, ::2]
    np.testing.assert_allclose(ana["error_pm"].values, pmap["disp_pm"].values - truth, atol=1e-4)
