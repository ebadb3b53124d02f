"""Small analytic "figures" (plinth + body + head + arm) as an SDF dataset, for tests and
benchmarks of the style model where the real corpus would be too slow.

Distances are exact-enough signed distances of unions of capsules, ellipsoids (scaled
spheres, approximate) and a cylinder plinth, in mm, on the canonical grid of
`sculptor.artifacts.sdf`.
"""

from __future__ import annotations

import os

import numpy as np

from sculptor.artifacts.core import Provenance
from sculptor.artifacts.sdf import grid_world_from_voxel, voxel_centers
from sculptor.dataset import PreparedPiece, write_dataset


def _capsule(p: np.ndarray, a: np.ndarray, b: np.ndarray, r: float) -> np.ndarray:
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1) - r


def _ellipsoid(p: np.ndarray, c: np.ndarray, radii: np.ndarray) -> np.ndarray:
    q = (p - c) / radii
    return (np.linalg.norm(q, axis=-1) - 1.0) * radii.min()


def _cylinder(p: np.ndarray, r: float, h: float) -> np.ndarray:
    d = np.stack([np.linalg.norm(p[..., :2], axis=-1) - r, np.abs(p[..., 2] - h / 2) - h / 2], -1)
    return np.minimum(d.max(-1), 0.0) + np.linalg.norm(np.maximum(d, 0.0), axis=-1)


def figure_sdf(params: dict, res: int) -> tuple[np.ndarray, float, float]:
    """(res, res, res) SDF in mm of one figure, with its height and largest extent (mm)."""
    h = params["height_mm"]
    plinth_h = params["plinth"] * h
    body_top = h - 2 * params["head"] * h
    extent = h  # figures are taller than wide
    w = grid_world_from_voxel(h, extent, res)
    p = voxel_centers(w, res)
    lean = params["lean"] * h
    d = _cylinder(p, params["plinth_r"] * h, plinth_h)
    d = np.minimum(d, _ellipsoid(p, np.array([lean / 2, 0, (plinth_h + body_top) / 2]),
                                 np.array([params["body_rx"] * h, params["body_ry"] * h,
                                           (body_top - plinth_h) / 2 * 1.05])))
    head_c = np.array([lean, 0.0, h - params["head"] * h])
    d = np.minimum(d, _ellipsoid(p, head_c, np.full(3, params["head"] * h)))
    sh = np.array([lean * 0.8, params["body_ry"] * h * 0.9, body_top * 0.92])
    hand = sh + np.array([params["arm_dx"] * h, params["body_ry"] * h * 0.3,
                          -params["arm_drop"] * h])
    d = np.minimum(d, _capsule(p, sh, hand, params["arm_r"] * h))
    return d, h, extent


def random_params(rng: np.random.Generator) -> dict:
    return {
        "height_mm": float(rng.uniform(300, 500)),
        "plinth": float(rng.uniform(0.06, 0.12)),
        "plinth_r": float(rng.uniform(0.18, 0.26)),
        "body_rx": float(rng.uniform(0.10, 0.17)),
        "body_ry": float(rng.uniform(0.08, 0.13)),
        "head": float(rng.uniform(0.07, 0.11)),
        "lean": float(rng.uniform(-0.08, 0.08)),
        "arm_dx": float(rng.uniform(-0.12, 0.12)),
        "arm_drop": float(rng.uniform(0.1, 0.35)),
        "arm_r": float(rng.uniform(0.025, 0.045)),
    }


def write_synthetic_dataset(out: str | os.PathLike, n: int = 24, res: int = 32,
                            seed: int = 0):
    """Write ``n`` random figures as an SDF dataset at ``out``; returns the manifest."""
    rng = np.random.default_rng(seed)
    pieces = []
    for i in range(n):
        prm = random_params(rng)
        d, h, ext = figure_sdf(prm, res)
        pieces.append(PreparedPiece(id=f"fig-{i:03d}", values=d, height_mm=h, extent_mm=ext,
                                    bbox_mm=[ext, ext, h], fields={"parameters": prm,
                                                                   "kind": "standing"}))
    prov = Provenance.make("sculptor.gen3d.synthetic", {"n": n, "res": res, "seed": seed})
    return write_dataset(out, pieces, res=res, source="corpus", provenance=prov)
