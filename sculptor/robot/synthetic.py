"""Synthetic toolpaths for tests and benchmarks: gouge strokes on a block on the turntable.

The CAM stage makes the real toolpaths; these follow the same conventions (TCP in the
workpiece frame, gouge frame from robot_profiles/README.md, turntable turning the stroke
to face the robot) so the robot stage can be tested on its own.
"""

from __future__ import annotations

import math

import numpy as np

from sculptor.artifacts.core import Provenance
from sculptor.artifacts.toolpath import MoveKind, Pass, StockSpec, Toolpath


def gouge_frame(d: np.ndarray, n: np.ndarray, rake_rad: float) -> np.ndarray:
    """Tool frames (m, 3, 3) for cutting direction d (m, 3) on a surface with outward
    normal n (m, 3): z = cos(a) d - sin(a) n, x = sin(a) d + cos(a) n, y = z x x."""
    z = math.cos(rake_rad) * d - math.sin(rake_rad) * n
    x = math.sin(rake_rad) * d + math.cos(rake_rad) * n
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=-1)


def block_strokes(*, size_mm=(220.0, 220.0, 450.0), n_strokes: int = 24,
                  step_mm: float = 0.5, stroke_mm: float = 50.0, rake_deg: float = 25.0,
                  depth_mm: float = 1.0, feed_mm_s: float = 25.0, seed: int = 0,
                  faces: tuple[str, ...] = ("side", "top"), tool_id: str = "gouge-12mm",
                  robot_side_rad: float = math.pi) -> Toolpath:
    """Gouge strokes spread over the sides and the top of a box (base at z = 0).

    Each stroke: RAPID to 15 mm above the start, PLUNGE, CUT along the stroke every
    ``step_mm`` at ``depth_mm`` below the surface, RETRACT. ``turntable_rad`` turns the
    stroke's face towards ``robot_side_rad`` (world direction of the robot seen from the
    turntable axis: pi when the robot stands at -x of the turntable).
    """
    rng = np.random.default_rng(seed)
    sx, sy, sz = size_mm
    pos_all, fr_all, kind_all, tt_all = [], [], [], []
    rake = math.radians(rake_deg)
    for s in range(n_strokes):
        face = faces[s % len(faces)]
        if face == "side":
            side = rng.integers(4)
            phi = side * math.pi / 2
            n = np.array([math.cos(phi), math.sin(phi), 0.0])
            t = np.array([-math.sin(phi), math.cos(phi), 0.0])
            half = (sx if side % 2 == 0 else sy) / 2
            other = (sy if side % 2 == 0 else sx) / 2
            along = rng.uniform(-other + 15, other - 15)
            z0 = rng.uniform(stroke_mm + 20, sz - 20)
            ang = rng.uniform(-0.6, 0.6)  # mostly downward strokes
            d = math.cos(ang) * np.array([0, 0, -1.0]) + math.sin(ang) * t
            start = n * half + t * along + np.array([0, 0, z0])
            table = robot_side_rad - phi
        else:
            n = np.array([0, 0, 1.0])
            a = rng.uniform(-math.pi, math.pi)
            d = np.array([math.cos(a), math.sin(a), 0.0])
            r = rng.uniform(0, min(sx, sy) / 2 - stroke_mm / 2 - 10)
            b = rng.uniform(-math.pi, math.pi)
            centre = np.array([r * math.cos(b), r * math.sin(b), sz])
            start = centre - d * stroke_mm / 2
            # turn the table so the stroke runs away from the robot
            table = robot_side_rad + math.pi - a
        m = max(2, int(round(stroke_mm / step_mm)) + 1)
        s_ = np.linspace(0, stroke_mm, m)
        cut = start[None] + s_[:, None] * d[None] - depth_mm * n[None]
        approach = start + 15 * n
        pts = np.vstack([approach[None], start[None] + 0 * n, cut[1:], (cut[-1] + 15 * n)[None]])
        kinds = np.array([MoveKind.RAPID, MoveKind.PLUNGE] + [MoveKind.CUT] * (m - 1)
                         + [MoveKind.RETRACT], np.int8)
        frame = gouge_frame(d[None], n[None], rake)[0]
        pos_all.append(pts)
        fr_all.append(np.repeat(frame[None], len(pts), 0))
        kind_all.append(kinds)
        table = math.remainder(table, 2 * math.pi)
        tt_all.append(np.full(len(pts), table))
    pos = np.vstack(pos_all)
    ps = Pass(name="finish-gouge", operation="finish", strategy="gouge-strokes",
              tool_id=tool_id, position_mm=pos, tool_frame=np.vstack(fr_all),
              feed_mm_s=np.full(len(pos), feed_mm_s), kind=np.concatenate(kind_all),
              turntable_rad=np.concatenate(tt_all))
    return Toolpath(provenance=Provenance.make("synthetic", {"n_strokes": n_strokes}),
                    design="synthetic-block", design_sha256="0" * 64,
                    cell="kuka-kr6-r900-turntable", machine="robot",
                    stock=StockSpec(kind="box", size_mm=list(size_mm)), passes=[ps])
