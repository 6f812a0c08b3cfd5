"""The two-branch polarization network, its input features and the 4mm symmetry operations.

Input features (computed inside the model, so any detector grid can be fed):

- intensities normalised to unit total and square-rooted (``sqrt`` keeps the weak high-angle
  signal without the log's suppression of small relative changes, Poisson-variance stabilising),
- a Cartesian branch: the central disks resampled on a ``n_cart x n_cart`` grid out to
  ``cart_mrad``,
- a polar branch: the high-angle ring (``cart_mrad`` .. ``max_mrad``, FOLZ ring and thermal
  diffuse scattering) unwrapped onto ``(n_r, n_theta)`` with circular padding along theta.

Outputs: ``(dx, dy, dz)`` means and log-variances (trained with the Gaussian negative
log-likelihood, Nix & Weigend 1994, doi:10.1109/ICNN.1994.374138), auxiliary thickness and tilt.

Symmetry: the 8 operations of 4mm act on the pattern as transpose / row flip / column flip and
on the in-plane displacement and tilt the same way; dz is invariant. A mirror z -> -z is *not*
used: reversing the beam direction through a dynamically scattering crystal does not give the
same pattern (that asymmetry is exactly the dz-sign signal), so there is no pattern operation
that flips dz.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn

__all__ = ["Polar4DNet", "SYMMETRY_OPS", "apply_op", "op_vectors", "invert_op_vectors"]

#: (transpose, flip rows, flip cols) for the 8 elements of 4mm.
SYMMETRY_OPS = tuple(itertools.product((False, True), repeat=3))
#: Displacement scale for the network outputs [pm].
DISP_SCALE_PM = 20.0


def apply_op(x: torch.Tensor, op) -> torch.Tensor:
    """Apply a 4mm operation to patterns ``(..., k, k)`` (transpose first, then flips)."""
    t, fr, fc = op
    if t:
        x = x.transpose(-2, -1)
    dims = [d for d, f in ((-2, fr), (-1, fc)) if f]
    return torch.flip(x, dims) if dims else x


def op_vectors(v: torch.Tensor, op) -> torch.Tensor:
    """The same operation on in-plane vectors ``(..., 2)`` (dx along rows, dy along cols)."""
    t, fr, fc = op
    if t:
        v = v.flip(-1)
    sign = torch.tensor([-1.0 if fr else 1.0, -1.0 if fc else 1.0], dtype=v.dtype, device=v.device)
    return v * sign


def invert_op_vectors(v: torch.Tensor, op) -> torch.Tensor:
    """Undo :func:`op_vectors` (flips first, then transpose)."""
    t, fr, fc = op
    sign = torch.tensor([-1.0 if fr else 1.0, -1.0 if fc else 1.0], dtype=v.dtype, device=v.device)
    v = v * sign
    return v.flip(-1) if t else v


def _block(c_in: int, c_out: int, circular: bool = False) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="circular" if circular else "zeros"),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class Polar4DNet(nn.Module):
    """Cartesian (central disks) + polar (high-angle ring) CNN.

    Parameters
    ----------
    k_pixel_mrad : float
        Detector pixel of the patterns it is fed [mrad] (zero angle at index ``k // 2``).
    width : int
        Channels of the first convolution of each branch.
    cart_mrad, max_mrad : float
        Cartesian-branch half-width and polar-branch outer radius [mrad].
    n_cart, n_r, n_theta : int
        Resampling grids.

    Notes
    -----
    ``forward(patterns (B, k, k) float32 [counts or intensity]) -> (B, 9)``: columns 0-2 means of
    (dx, dy, dz) / 20 pm, 3-5 their log-variances, 6 thickness / 10 nm, 7-8 tilt [mrad].
    """

    def __init__(
        self,
        k_pixel_mrad: float,
        width: int = 16,
        cart_mrad: float = 36.0,
        max_mrad: float = 115.0,
        n_cart: int = 24,
        n_r: int = 16,
        n_theta: int = 64,
    ):
        super().__init__()
        self.k_pixel_mrad = float(k_pixel_mrad)
        #: zero-angle pixel (row, col) of the patterns fed in; None = (k_row // 2, k_col // 2)
        self.k_center_px: tuple[float, float] | None = None
        self.config = {
            "k_pixel_mrad": float(k_pixel_mrad), "width": width, "cart_mrad": cart_mrad,
            "max_mrad": max_mrad, "n_cart": n_cart, "n_r": n_r, "n_theta": n_theta,
        }  # fmt: skip
        g = torch.linspace(-cart_mrad, cart_mrad, n_cart)
        cy, cx = torch.meshgrid(g, g, indexing="ij")
        r = torch.linspace(cart_mrad, max_mrad, n_r)
        th = torch.arange(n_theta) * (2 * np.pi / n_theta)
        rr, tt = torch.meshgrid(r, th, indexing="ij")
        self.register_buffer("cart_rc", torch.stack([cy, cx], -1), persistent=False)
        self.register_buffer(
            "polar_rc", torch.stack([rr * torch.cos(tt), rr * torch.sin(tt)], -1), persistent=False
        )
        w = width
        self.cart = nn.Sequential(_block(1, w), _block(w, 2 * w), _block(2 * w, 4 * w),
                                  nn.AdaptiveAvgPool2d(3), nn.Flatten())  # fmt: skip
        self.polar = nn.Sequential(_block(1, w, True), _block(w, 2 * w, True),
                                   nn.AdaptiveAvgPool2d((2, 8)), nn.Flatten())  # fmt: skip
        n_feat = 4 * w * 9 + 2 * w * 16
        self.head = nn.Sequential(nn.Linear(n_feat, 128), nn.ReLU(inplace=True), nn.Linear(128, 9))

    def _sample(self, img: torch.Tensor, rc_mrad: torch.Tensor) -> torch.Tensor:
        kr, kc = img.shape[-2:]
        center = self.k_center_px if self.k_center_px is not None else (kr // 2, kc // 2)
        # grid_sample wants (x=col, y=row) in [-1, 1] with align_corners=True
        pix = rc_mrad / self.k_pixel_mrad + rc_mrad.new_tensor(center)
        grid = (pix / rc_mrad.new_tensor([kr - 1, kc - 1]) * 2 - 1).flip(-1)
        grid = grid.unsqueeze(0).expand(img.shape[0], *grid.shape)
        return nn.functional.grid_sample(img, grid, align_corners=True, padding_mode="zeros")

    def features(self, patterns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cartesian ``(B, 1, n_cart, n_cart)`` and polar ``(B, 1, n_r, n_theta)`` inputs."""
        x = patterns.float().clamp_min(0).unsqueeze(1)
        total = x.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
        x = torch.sqrt(x / total * x.shape[-1] * x.shape[-2])
        return self._sample(x, self.cart_rc), self._sample(x, self.polar_rc)

    def forward(self, patterns: torch.Tensor) -> torch.Tensor:
        c, p = self.features(patterns)
        return self.head(torch.cat([self.cart(c), self.polar(p)], dim=1))


def gaussian_nll_loss(out: torch.Tensor, target: torch.Tensor, aux_weight: float = 0.1):
    """Gaussian NLL on (dx, dy, dz) plus MSE on thickness and tilt; ``target (B, 6)`` scaled."""
    mean, logvar = out[:, :3], out[:, 3:6].clamp(-12, 6)
    nll = 0.5 * (logvar + (target[:, :3] - mean) ** 2 * torch.exp(-logvar)).mean()
    aux = ((out[:, 6:9] - target[:, 3:6]) ** 2).mean()
    return nll + aux_weight * aux


@torch.inference_mode()
def predict(model: Polar4DNet, patterns: torch.Tensor, tta: bool = True):
    """Displacements and 1-sigma uncertainties with optional 4mm test-time averaging.

    Parameters
    ----------
    patterns : (B, k, k) float32

    Returns
    -------
    mean_pm, sigma_pm : (B, 3) float32 [pm]
        With TTA the variance is the mean predicted variance plus the spread over operations.
    thickness_nm : (B,) float32
    """
    ops = SYMMETRY_OPS if tta else SYMMETRY_OPS[:1]
    means, vars_, thick = [], [], []
    for op in ops:
        out = model(apply_op(patterns, op).contiguous())
        m = out[:, :3].clone()
        v = torch.exp(out[:, 3:6].clamp(-12, 6))
        m[:, :2] = invert_op_vectors(m[:, :2], op)
        v[:, :2] = invert_op_vectors(v[:, :2], op).abs()
        means.append(m)
        vars_.append(v)
        thick.append(out[:, 6])
    m = torch.stack(means)
    var = torch.stack(vars_).mean(0) + m.var(0, unbiased=False)
    return (
        (m.mean(0) * DISP_SCALE_PM).numpy(),
        (var.sqrt() * DISP_SCALE_PM).numpy(),
        (torch.stack(thick).mean(0) * 10.0).numpy(),
    )
