"""Shared nn pieces: U-Net shapes, device selection, weights as bytes, checkpoint resume."""

import numpy as np
import pytest
import torch
import xarray as xr

from scopeflow.nn import (
    UNet,
    fold_batchnorm,
    load_state_bytes,
    n_parameters,
    select_device,
    state_bytes,
    train_loop,
)


def test_unet_shapes_and_size():
    net = UNet(1, 7, width=8, depth=3)
    y = net(torch.zeros(2, 1, 64, 48))
    assert y.shape == (2, 7, 64, 48)
    # the defects network must stay small (50-200 k parameters)
    assert 50_000 < n_parameters(net) < 200_000


def test_select_device():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="unknown|must be"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            select_device("cuda")


def test_weights_round_trip_through_zarr(tmp_path):
    torch.manual_seed(0)
    net = UNet(1, 3, width=4, depth=1)
    ds = xr.Dataset({"weights": ("byte", state_bytes(net), {"units": "1"})})
    ds.to_zarr(tmp_path / "m.zarr", zarr_format=3, consolidated=False)
    back = xr.open_zarr(tmp_path / "m.zarr", consolidated=False)
    net2 = load_state_bytes(UNet(1, 3, width=4, depth=1), back["weights"].values)
    for (k, a), (_, b) in zip(net.state_dict().items(), net2.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def _problem():
    def batch(step):
        g = torch.Generator().manual_seed(step)
        x = torch.randn(2, 1, 16, 16, generator=g)
        return x, (x[:, 0] > 0).long()

    return batch, torch.nn.CrossEntropyLoss()


def test_checkpoint_resume_equals_uninterrupted(tmp_path):
    batch, loss = _problem()
    torch.manual_seed(0)
    ref = UNet(1, 2, width=4, depth=1)
    h_ref = train_loop(
        ref, batch, loss, steps=6, lr=1e-2, device=torch.device("cpu"), progress=False
    )
    # a 6-step run killed at step 3, then resumed from its checkpoint
    ck = tmp_path / "ck.pt"
    torch.manual_seed(0)
    net = UNet(1, 2, width=4, depth=1)

    class Stop(Exception):
        pass

    def cut(step):
        if step == 3:
            raise Stop
        return batch(step)

    with pytest.raises(Stop):
        train_loop(
            net,
            cut,
            loss,
            steps=6,
            lr=1e-2,
            device=torch.device("cpu"),
            checkpoint=ck,
            checkpoint_every=1,
            progress=False,
        )
    torch.manual_seed(123)  # a different init: everything must come from the checkpoint
    resumed = UNet(1, 2, width=4, depth=1)
    h = train_loop(
        resumed,
        batch,
        loss,
        steps=6,
        lr=1e-2,
        device=torch.device("cpu"),
        checkpoint=ck,
        checkpoint_every=1,
        progress=False,
    )
    assert np.allclose(h, h_ref)
    for a, b in zip(ref.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


def test_training_is_bit_reproducible_and_restores_settings():
    batch, loss = _problem()
    before = torch.are_deterministic_algorithms_enabled()
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = UNet(1, 2, width=4, depth=2)
        h = train_loop(
            net, batch, loss, steps=5, lr=1e-2, device=torch.device("cpu"), progress=False
        )
        runs.append((h, net.state_dict()))
    # same seeds, batches and thread count: identical losses and weights, not merely close
    assert runs[0][0] == runs[1][0]
    for k, a in runs[0][1].items():
        assert torch.equal(a, runs[1][1][k]), k
    assert torch.are_deterministic_algorithms_enabled() == before


@pytest.mark.parametrize("grad", [True, False])
def test_split_convolution_equals_convolution_of_concatenation(grad):
    from scopeflow.nn.blocks import _conv_concat

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(5, 4, 3, padding=1)
    a, b = torch.randn(2, 3, 9, 7), torch.randn(2, 2, 9, 7)
    with torch.set_grad_enabled(grad):
        ref = conv(torch.cat([a, b], 1))
        out = _conv_concat(conv, a, b)
    # the same sums in a different order: float32 rounding only
    assert torch.allclose(out, ref, atol=1e-5)
    assert out.requires_grad == grad


def test_unet_space_to_depth_and_level_widths():
    # pixel unshuffle in, shuffle out: the logits keep the input grid; the input must be a
    # multiple of space_to_depth * 2**depth
    net = UNet(1, 7, width=(16, 24, 32, 64), space_to_depth=2)
    assert net.depth == 3 and net.multiple == 16
    y = net(torch.zeros(2, 1, 48, 32))
    assert y.shape == (2, 7, 48, 32)
    assert net.down[0][0].in_channels == 4 and net.head.out_channels == 28
    # folding the batch norms keeps the unshuffled network's output (eval mode)
    net.eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        ref = net(x)
        np.testing.assert_allclose(fold_batchnorm(net)(x).numpy(), ref.numpy(), atol=1e-4)
