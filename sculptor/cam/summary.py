"""Job figures for ``JOB/summary.json``: lengths, time with acceleration limits, air-cut
share, strokes, and the gouge check of every cutting move against the design.

Time model: each move is a straight segment at its feed (RAPID at ``RAPID_MM_S``) with a
trapezoidal speed profile (acceleration ``ACCEL_MM_S2``); the tool stops where the path
turns by more than 30 deg or the move kind changes. Turntable indexing between moves
adds a trapezoid in angle at the cell's turntable speed and acceleration.
"""

from __future__ import annotations

import math

import numpy as np

from sculptor.artifacts.toolpath import MoveKind, Pass
from sculptor.cam.toolshape import GOUGE_TOL_MM, gouge_body_points, gouge_cutting_points, \
    penetration, rotary_body_points, rotary_cutting_points, to_piece

RAPID_MM_S = 150.0
ACCEL_MM_S2 = 800.0


def _trapezoid(L: np.ndarray, v: np.ndarray, a: float) -> np.ndarray:
    full = L >= v * v / a
    return np.where(full, L / np.maximum(v, 1e-9) + v / a, 2 * np.sqrt(L / a))


def pass_time_s(p: Pass, prev_pos, prev_theta, turntable) -> float:
    if p.n_moves == 0:
        return 0.0
    pos = p.position_mm if prev_pos is None else np.vstack([prev_pos, p.position_mm])
    seg = np.diff(pos, axis=0) if prev_pos is not None else np.diff(
        np.vstack([p.position_mm[:1], p.position_mm]), axis=0)
    L = np.linalg.norm(seg, axis=1)
    v = np.where(p.kind == MoveKind.RAPID, RAPID_MM_S, p.feed_mm_s)
    # segments that flow into the next without stopping
    d = seg / np.maximum(L[:, None], 1e-9)
    cosang = np.sum(d[1:] * d[:-1], axis=1)
    flow = np.concatenate([(cosang > math.cos(math.radians(30))) & (p.kind[1:] == p.kind[:-1]),
                           [False]])
    t_stop = _trapezoid(L, v, ACCEL_MM_S2)
    t = np.where(flow, L / np.maximum(v, 1e-9), t_stop)
    total = float(t.sum())
    th = np.concatenate([[prev_theta if prev_theta is not None else p.turntable_rad[0]],
                         p.turntable_rad])
    dth = np.abs(np.diff(th))
    if turntable is not None and dth.any():
        w = math.radians(turntable.max_speed_deg_s)
        a = math.radians(turntable.max_accel_deg_s2)
        total += float(_trapezoid(dth[dth > 1e-9], np.full((dth > 1e-9).sum(), w), a).sum())
    return total


def pass_lengths(p: Pass, prev_pos) -> tuple[float, float]:
    pos = p.position_mm if prev_pos is None else np.vstack([prev_pos, p.position_mm])
    L = np.linalg.norm(np.diff(pos, axis=0), axis=1)
    kind = p.kind if prev_pos is not None else p.kind[1:]
    return float(L.sum()), float(L[kind == MoveKind.CUT].sum())


def air_share(p: Pass, stock_model, reach_mm: float) -> float:
    """Share of the CUT length with no stock within reach of the tool (stock state at the
    start of the pass)."""
    cut = np.flatnonzero(p.kind == MoveKind.CUT)
    cut = cut[cut > 0]
    if len(cut) == 0:
        return 0.0
    a, b = p.position_mm[cut - 1], p.position_mm[cut]
    L = np.linalg.norm(b - a, axis=1)
    mid = (a + b) / 2 - p.tool_frame[cut, :, 2] * reach_mm * 0.5
    has = stock_model.material_near(mid, reach_mm + 1.0)
    return float(L[~has].sum() / max(L.sum(), 1e-9))


def rotary_gouge_check(p: Pass, query, tool, allowance_mm: float) -> dict:
    """Distance from the cutter to the design over CUT/PLUNGE moves (whole cutting shape;
    ball exactly through its centre) and holder/shank contact."""
    sel = np.flatnonzero((p.kind == MoveKind.CUT) | (p.kind == MoveKind.PLUNGE))
    if len(sel) == 0:
        return {"max_gouge_mm": 0.0, "min_clearance_mm": None, "holder_contacts": 0}
    pos, fr = p.position_mm[sel], p.tool_frame[sel]
    # sample also between moves (long linear moves)
    if tool.kind == "ball":
        c = pos - fr[:, :, 2] * tool.radius_mm
        dist = query.near_distance(c, tool.radius_mm + 2.0) - tool.radius_mm
    else:
        # first a bounding sphere of the cutting end (one query per move), then every
        # sample point of the cutting shape for the moves that come near the design
        half = tool.flute_length_mm / 2
        bound = math.hypot(tool.radius_mm, half)
        dc = query.near_distance(pos - fr[:, :, 2] * half, bound + 2.0) - bound
        dist = dc.copy()
        near = np.flatnonzero(dc < 2.0)
        if len(near):
            dist[near] = -penetration(query, pos[near], fr[near], rotary_cutting_points(tool),
                                      2.0)
    body = query.inside(to_piece(pos, fr, rotary_body_points(tool)).reshape(-1, 3))
    gouge = float(max(0.0, -(dist.min() - 0.0))) if allowance_mm <= 0 else \
        float(max(0.0, -dist.min()))
    return {"max_gouge_mm": gouge, "min_clearance_mm": float(dist.min()),
            "holder_contacts": int(body.sum())}


def gouge_tool_check(p: Pass, query, tool) -> dict:
    """Like rotary_gouge_check for a gouge (roughing strokes): edge and bevel points
    against the design, shank and holder surfaces not inside it."""
    sel = np.flatnonzero((p.kind == MoveKind.CUT) | (p.kind == MoveKind.PLUNGE))
    if len(sel) == 0:
        return {"max_gouge_mm": 0.0, "min_clearance_mm": None, "holder_contacts": 0}
    pos, fr = p.position_mm[sel], p.tool_frame[sel]
    dist = -penetration(query, pos, fr, gouge_cutting_points(tool), 2.0)
    body = query.inside(to_piece(pos, fr, gouge_body_points(tool)).reshape(-1, 3))
    return {"max_gouge_mm": float(max(0.0, -dist.min())),
            "min_clearance_mm": float(dist.min()), "holder_contacts": int(body.sum())}


def summarize(passes, stock_states, turntable, extra: dict) -> dict:
    out = {"passes": [], "total": {}}
    prev_pos, prev_th = None, None
    tot = {"path_length_mm": 0.0, "cutting_length_mm": 0.0, "time_s": 0.0, "moves": 0,
           "strokes": 0, "air_length_mm": 0.0}
    for p, air in zip(passes, stock_states):
        L, C = pass_lengths(p, prev_pos)
        t = pass_time_s(p, prev_pos, prev_th, turntable)
        row = {"name": p.name, "operation": p.operation, "strategy": p.strategy,
               "tool": p.tool_id, "turntable_deg": p.setup_turntable_deg,
               "moves": p.n_moves, "path_length_mm": round(L, 1),
               "cutting_length_mm": round(C, 1), "time_s": round(t, 1),
               "air_cut_share": round(air, 3), "strokes": int(p.stats.get("strokes", 0))}
        row.update({k: v for k, v in p.stats.items() if k not in row})
        out["passes"].append(row)
        tot["path_length_mm"] += L
        tot["cutting_length_mm"] += C
        tot["time_s"] += t
        tot["moves"] += p.n_moves
        tot["strokes"] += row["strokes"]
        tot["air_length_mm"] += air * C
        if p.n_moves:
            prev_pos, prev_th = p.position_mm[-1], p.turntable_rad[-1]
    tot["air_cut_share"] = tot.pop("air_length_mm") / max(tot["cutting_length_mm"], 1e-9)
    tot = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in tot.items()}
    tot["time_h"] = round(tot["time_s"] / 3600, 2)
    out["total"] = tot
    out.update(extra)
    out["gouge_tolerance_mm"] = GOUGE_TOL_MM
    return out
