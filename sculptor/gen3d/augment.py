"""Augmentations that sculpture allows: turn about the vertical axis, mirror, mild
anisotropic scale in plan. Never tilt: the base stays on the same grid plane.

Grids are (B, 1, R, R, R) with axis 2 = x, 3 = y, 4 = z (up); the vertical axis of the
piece passes through the grid centre in x and y (the piece frame's origin).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_plan_transforms(n: int, gen: torch.Generator, max_scale: float = 0.1,
                           max_turn_deg: float = 20.0) -> torch.Tensor:
    """(n, 2, 2) maps from output (x, y) to input (x, y) in normalised grid coordinates:
    a random turn about z within +-max_turn_deg, a random left-right mirror (x -> -x, the
    piece keeps facing -Y) and a scale in [1 - s, 1 + s] per plan axis."""
    ang = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(max_turn_deg)
    c, s = ang.cos(), ang.sin()
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    mirror = torch.ones(n, 2)
    mirror[:, 0] = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    scale = 1.0 + (torch.rand(n, 2, generator=gen) * 2 - 1) * max_scale
    return rot @ torch.diag_embed(mirror / scale)


def augment(grids: torch.Tensor, gen: torch.Generator, max_scale: float = 0.1,
            max_turn_deg: float = 20.0) -> torch.Tensor:
    """Resample (B, 1, R, R, R) grids under random plan transforms (trilinear, border)."""
    B, _, R = grids.shape[:3]
    A = random_plan_transforms(B, gen, max_scale, max_turn_deg).to(grids.device, grids.dtype)
    lin = (torch.arange(R, device=grids.device, dtype=grids.dtype) + 0.5) / R * 2 - 1
    gx, gy, gz = torch.meshgrid(lin, lin, lin, indexing="ij")  # (R, R, R) each
    xy = torch.stack([gx, gy], -1).reshape(1, -1, 2)  # output plan coordinates
    src = xy @ A.transpose(1, 2)  # (B, R^3, 2) input plan coordinates
    z = gz.reshape(1, -1, 1).expand(B, -1, 1)
    # grid_sample's last dim is (W, H, D) = (axis 4, 3, 2) = (z, y, x)
    g = torch.cat([z, src[..., 1:2], src[..., 0:1]], -1).reshape(B, R, R, R, 3)
    return F.grid_sample(grids, g, mode="bilinear", padding_mode="border", align_corners=False)
