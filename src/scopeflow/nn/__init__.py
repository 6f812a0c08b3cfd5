"""Small shared neural-network pieces: U-Net builder, training loop, checkpoints, devices."""

from scopeflow.nn.blocks import UNet, conv_block, fold_batchnorm, n_parameters
from scopeflow.nn.device import select_device
from scopeflow.nn.training import deterministic, load_state_bytes, state_bytes, train_loop

__all__ = [
    "UNet",
    "conv_block",
    "fold_batchnorm",
    "n_parameters",
    "select_device",
    "deterministic",
    "train_loop",
    "state_bytes",
    "load_state_bytes",
]
