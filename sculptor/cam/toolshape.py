"""The whole tool as sample points, for the gouge-free and holder checks against the design.

Points are in the TCP frame (x, y, z; the tool reaches along +z; z = 0 at the TCP).
``cutting`` points must stay outside the design within GOUGE_TOL_MM (signed distance);
``body`` points (shank, holder: their surfaces) must not be inside the design.
"""

from __future__ import annotations

import math

import numpy as np

from sculptor.profiles import GougeTool

GOUGE_TOL_MM = 0.02
BLADE_THICKNESS_MM = 3.0  # gouge blade (steel) thickness behind the edge; not in the profile


def _rings(radius: float, z0: float, z1: float, dz: float, per_ring: int) -> np.ndarray:
    zs = np.arange(z0, z1 - 1e-9, -dz)
    t = np.linspace(0, 2 * math.pi, per_ring, endpoint=False)
    ring = np.column_stack([radius * np.cos(t), radius * np.sin(t)])
    return np.concatenate([np.column_stack([ring, np.full(per_ring, z)]) for z in zs])


def gouge_cutting_points(tool: GougeTool, n_edge: int = 9) -> np.ndarray:
    """(k, 3): the edge arc, the bevel (from edge back to its heel) in the TCP frame."""
    r, w = tool.edge_arc_radius_mm, tool.width_mm / 2
    y = np.linspace(-w, w, n_edge)
    xe = r - np.sqrt(r * r - y * y)
    pts = [np.column_stack([xe, y, np.zeros_like(y)])]
    heel = BLADE_THICKNESS_MM / math.tan(math.radians(tool.bevel_angle_deg))
    for frac in (0.5, 1.0):
        pts.append(np.column_stack([xe - frac * BLADE_THICKNESS_MM, y,
                                    np.full_like(y, -frac * heel)]))
    return np.concatenate(pts)


def gouge_body_points(tool: GougeTool) -> np.ndarray:
    """(k, 3): blade/shank surface from behind the bevel to the holder, and the holder."""
    heel = BLADE_THICKNESS_MM / math.tan(math.radians(tool.bevel_angle_deg))
    rs = tool.shank_diameter_mm / 2
    shank = _rings(rs, -heel - rs - 4.0, -tool.length_mm, 10.0, 8)
    shank[:, 0] += tool.arc_depth_mm / 2  # shank axis near the middle of the arc section
    holder = _rings(tool.holder.diameter_mm / 2, -tool.length_mm,
                    -tool.length_mm - tool.holder.length_mm, 15.0, 12)
    return np.concatenate([shank, holder])


def rotary_body_points(tool) -> np.ndarray:
    """(k, 3): shank above the flutes and the holder of a rotary tool (TCP = tip)."""
    rs = tool.shank_diameter_mm / 2
    shank = _rings(rs, -tool.flute_length_mm, -tool.length_mm, 10.0, 8)
    holder = _rings(tool.holder.diameter_mm / 2, -tool.length_mm,
                    -tool.length_mm - tool.holder.length_mm, 15.0, 12)
    return np.concatenate([shank, holder])


def rotary_cutting_points(tool) -> np.ndarray:
    """(k, 3): the cutting end (bottom shape and the flank up the flutes) of a flat or bull
    cutter; a ball is checked exactly through its centre instead."""
    R, rc = tool.radius_mm, tool.corner_radius_mm
    t = np.linspace(0, 2 * math.pi, 16, endpoint=False)
    pts = []
    for rr in (0.0, (R - rc) / 2, R - rc):
        pts.append(np.column_stack([rr * np.cos(t), rr * np.sin(t), np.zeros_like(t)]))
    for ang in np.linspace(0, math.pi / 2, 4)[1:]:
        rr = R - rc + rc * math.sin(ang)
        zz = -(rc - rc * math.cos(ang))
        pts.append(np.column_stack([rr * np.cos(t), rr * np.sin(t), np.full_like(t, zz)]))
    pts.append(_rings(R, -rc - 2.0, -tool.flute_length_mm, 4.0, 16))
    return np.concatenate(pts)


def to_piece(pos: np.ndarray, frames: np.ndarray, local: np.ndarray) -> np.ndarray:
    """(m, k, 3) piece-frame points of local tool points (k, 3) at m poses."""
    return pos[:, None, :] + np.einsum("mij,kj->mki", frames, local)


def penetration(query, pos: np.ndarray, frames: np.ndarray, local: np.ndarray,
                limit_mm: float | None = None) -> np.ndarray:
    """(m,) deepest any of the local tool points (k, 3) lies inside the design at the m
    poses (negative: clearance). Exact signed distance, or with ``limit_mm`` exact only
    where |d| <= limit_mm (``MeshQuery.near_distance``)."""
    pts = to_piece(pos, frames, local).reshape(-1, 3)
    sd = query.signed_distance(pts) if limit_mm is None else query.near_distance(pts, limit_mm)
    return -sd.reshape(len(pos), -1).min(1)


def body_inside(query, pos: np.ndarray, frames: np.ndarray, local: np.ndarray) -> np.ndarray:
    """(m,) bool: any of the local tool points (k, 3) is inside the design at the m poses."""
    return query.inside(to_piece(pos, frames, local).reshape(-1, 3)).reshape(len(pos), -1
                                                                              ).any(1)


def is_gouge(tool) -> bool:
    return isinstance(tool, GougeTool)
