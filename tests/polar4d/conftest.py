"""Session fixtures: one tiny abTEM training set and one tiny scan, shared by the polar4d tests.

Sizes are CI-sized (thin crystals, few structures): they test that the pipeline works and learns,
not the acceptance accuracy (bench/polar4d.py measures that).
"""

import pytest
import torch

from scopeflow.polar4d.options import (
    OpticsOptions,
    SimulateOptions,
    TrainOptions,
    TrainSetOptions,
)
from scopeflow.polar4d.simulate import simulate_scan, simulate_trainset
from scopeflow.polar4d.train import train_model

OPTICS = OpticsOptions(material="SrTiO3")


@pytest.fixture(scope="session")
def trainset():
    opts = TrainSetOptions(
        optics=OPTICS,
        n_structures=24,
        thickness_cells=(4, 6),
        positions_per_structure=1,
        # probe within +-8 pm of the Ti column: a probe offset mimics a Ti shift, and telling
        # them apart (from the A and O columns) needs far more than a CI-sized training set
        position_jitter=0.02,
        chunk_structures=12,
        seed=3,
    )
    return simulate_trainset([], opts)


@pytest.fixture(scope="session")
def model(trainset):
    torch.manual_seed(0)
    opts = TrainOptions(steps=250, batch_size=32, width=8, holdout_fraction=0.25, device="cpu")
    return train_model([trainset], opts)


@pytest.fixture(scope="session")
def scan():
    opts = SimulateOptions(optics=OPTICS, scan_shape=(3, 3), thickness_cells=6, dose=1e4)
    return simulate_scan([], opts)
