"""U-Net building blocks.

U-Net: Ronneberger, Fischer, Brox, MICCAI 2015, doi:10.1007/978-3-319-24574-4_28.

A small encoder-decoder with skip connections: each level is two 3x3 convolutions with batch
normalisation and ReLU; max-pooling down, bilinear up-sampling (cheaper than transposed
convolutions) and concatenation of the skip features (in inference computed as two convolutions
on the parts: the same map without the concatenated copy); a 1x1 convolution gives the class
logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["conv_block", "UNet", "n_parameters", "fold_batchnorm"]


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """Two (3x3 conv, batch norm, ReLU) layers, padding keeps the size."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Fully convolutional U-Net.

    Parameters
    ----------
    in_channels, n_classes : int
        Input channels and output classes.
    width : int or sequence of int
        Channels of the first level, level ``k`` then has ``width * 2**k``; or the channels of
        every level, finest first (then ``depth`` is its length minus one).
    depth : int
        Number of down-sampling steps (with an integer ``width``).
    space_to_depth : int
        Block size ``s`` of a pixel unshuffle at the input (each ``s x s`` block of pixels becomes
        ``s**2`` channels) and of the matching pixel shuffle of the logits
        (Shi et al., CVPR 2016, doi:10.1109/CVPR.2016.207): the convolutions run on an
        ``s``-times coarser grid (for ``s = 2`` about 3x less time on a CPU for the defects
        network, whose finest level dominated) while the output keeps the input's grid.

    Notes
    -----
    Input ``(batch, in_channels, rows, cols)`` with rows and cols divisible by
    :attr:`multiple` ``= space_to_depth * 2**depth``; output logits
    ``(batch, n_classes, rows, cols)``.
    """

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        width: int | Sequence[int] = 12,
        depth: int = 3,
        space_to_depth: int = 1,
    ):
        super().__init__()
        s2 = space_to_depth**2
        if isinstance(width, int):
            chans = [width * 2**k for k in range(depth + 1)]
        else:
            chans = [int(c) for c in width]
            depth = len(chans) - 1
        self.down = nn.ModuleList([conv_block(in_channels * s2, chans[0])])
        self.down.extend(conv_block(chans[k], chans[k + 1]) for k in range(depth))
        self.up = nn.ModuleList(
            conv_block(chans[k + 1] + chans[k], chans[k]) for k in reversed(range(depth))
        )
        self.head = nn.Conv2d(chans[0], n_classes * s2, 1)
        self.depth = depth
        self.space_to_depth = space_to_depth
        #: the input size must be a multiple of this
        self.multiple = space_to_depth * 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.space_to_depth
        if s > 1:
            x = nn.functional.pixel_unshuffle(x, s)
        skips = []
        for k, block in enumerate(self.down):
            if k > 0:
                x = nn.functional.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.up:
            x = nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = block[1:](_conv_concat(block[0], x, skips.pop()))
        x = self.head(x)
        return nn.functional.pixel_shuffle(x, s) if s > 1 else x


def _conv_concat(conv: nn.Conv2d, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``conv(torch.cat([a, b], 1))``, in inference without the concatenated copy.

    A convolution is linear in its input channels, so it splits into one convolution per part
    with the matching slices of the kernel, summed in place: this saves writing and re-reading
    the concatenated feature map (the concatenation was 8 % of a CPU forward pass of the
    defects U-Net on 4 x 512^2 inputs; the split pass measured 5-8 % faster). With gradients
    (training) the concatenation is kept, so training is unchanged.
    """
    if torch.is_grad_enabled():
        return conv(torch.cat([a, b], dim=1))
    c = a.shape[1]
    out = nn.functional.conv2d(a, conv.weight[:, :c], conv.bias, conv.stride, conv.padding)
    return out.add_(nn.functional.conv2d(b, conv.weight[:, c:], None, conv.stride, conv.padding))


def n_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every (Conv2d, BatchNorm2d) pair of every ``nn.Sequential`` into one convolution.

    Exact for a model in eval mode (``torch.nn.utils.fusion.fuse_conv_bn_eval``); the batch norm
    is replaced by ``nn.Identity``. Modifies and returns ``model`` (set to eval mode).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for k in range(len(seq) - 1):
            if isinstance(seq[k], nn.Conv2d) and isinstance(seq[k + 1], nn.BatchNorm2d):
                seq[k] = fuse_conv_bn_eval(seq[k], seq[k + 1])
                seq[k + 1] = nn.Identity()
    return model
