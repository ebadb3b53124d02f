"""Move lists, tool frames and turntable angles shared by every strategy.

Frames follow robot_profiles/README.md: ``tool_frame`` = workpiece_from_tool (columns x, y,
z); tools reach along +Z. A rotary cutter approaching along -f has z = -f. A gouge cutting
along surface tangent d with outward normal n at rake a has
z = cos(a) d - sin(a) n, x = sin(a) d + cos(a) n, y = z x x.
"""

from __future__ import annotations

import math

import numpy as np

from sculptor.artifacts.toolpath import MoveKind, Pass


def rotary_frame(f: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(3, 3) workpiece_from_tool for a cutter approaching along -f; tool x along u."""
    z = -np.asarray(f, float)
    x = np.asarray(u, float) - z * float(np.dot(u, z))
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def gouge_frames(d: np.ndarray, n: np.ndarray, rake_rad) -> np.ndarray:
    """(m, 3, 3) gouge frames from stroke directions d (m, 3), outward normals n (m, 3)
    (d is made tangent) and rake (scalar or (m,)) radians."""
    d = np.asarray(d, float)
    n = np.asarray(n, float)
    d = d - n * np.sum(d * n, axis=1, keepdims=True)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    a = np.broadcast_to(np.asarray(rake_rad, float), (len(d),))[:, None]
    z = np.cos(a) * d - np.sin(a) * n
    x = np.sin(a) * d + np.cos(a) * n
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=2)


def turntable_for_facing(f: np.ndarray, robot_dir_world=(-1.0, 0.0, 0.0)) -> float:
    """Turntable angle (rad) that turns piece-frame direction f to face the robot
    (horizontal part of f onto the world direction from the turntable to the robot)."""
    fx, fy = float(f[0]), float(f[1])
    if math.hypot(fx, fy) < 1e-9:
        return 0.0
    return wrap(math.atan2(robot_dir_world[1], robot_dir_world[0]) - math.atan2(fy, fx))


def wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


class MoveList:
    """Accumulates moves for one pass; ``to_pass`` makes the artifact's Pass."""

    def __init__(self):
        self.p: list[np.ndarray] = []
        self.r: list[np.ndarray] = []
        self.f: list[np.ndarray] = []
        self.k: list[np.ndarray] = []
        self.t: list[np.ndarray] = []

    def add(self, pos, frame, feed, kind: MoveKind | np.ndarray, turntable_rad: float):
        pos = np.asarray(pos, float).reshape(-1, 3)
        m = len(pos)
        if m == 0:
            return
        frame = np.asarray(frame, float)
        frame = np.broadcast_to(frame, (m, 3, 3)) if frame.ndim == 2 else frame
        self.p.append(pos)
        self.r.append(np.asarray(frame, float).reshape(m, 3, 3))
        self.f.append(np.broadcast_to(np.asarray(feed, float), (m,)).copy())
        self.k.append(np.broadcast_to(np.asarray(kind, np.int8), (m,)).copy())
        self.t.append(np.full(m, float(turntable_rad)))

    def __len__(self) -> int:
        return sum(len(x) for x in self.p)

    def mark(self) -> int:
        return len(self.p)

    def since(self, mark: int) -> np.ndarray:
        """(k, 3) positions of the moves added since ``mark``."""
        return np.concatenate(self.p[mark:]) if len(self.p) > mark else np.zeros((0, 3))

    def rollback(self, mark: int) -> None:
        """Forget the moves added since ``mark``."""
        for x in (self.p, self.r, self.f, self.k, self.t):
            del x[mark:]

    def last(self):
        return (self.p[-1][-1], self.r[-1][-1]) if self.p else (None, None)

    def to_pass(self, **kw) -> Pass:
        if not self.p:
            z = np.zeros(0)
            return Pass(position_mm=np.zeros((0, 3)), tool_frame=np.zeros((0, 3, 3)),
                        feed_mm_s=z, kind=z.astype(np.int8), turntable_rad=z, **kw)
        return Pass(position_mm=np.concatenate(self.p), tool_frame=np.concatenate(self.r),
                    feed_mm_s=np.concatenate(self.f), kind=np.concatenate(self.k),
                    turntable_rad=np.concatenate(self.t), **kw)


def resample_polyline(p: np.ndarray, step: float, closed: bool = False) -> np.ndarray:
    """Points every ~``step`` mm along a polyline (m, k), keeping both ends."""
    p = np.asarray(p, float)
    if closed:
        p = np.concatenate([p, p[:1]])
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 0:
        return p[:1]
    n = max(1, int(math.ceil(s[-1] / step)))
    st = np.linspace(0, s[-1], n + 1)
    return np.stack([np.interp(st, s, p[:, j]) for j in range(p.shape[1])], axis=1)


def simplify_indices(p: np.ndarray, tol_mm: float) -> np.ndarray:
    """Indices of the points of polyline p (m, 3) that Douglas-Peucker keeps: every
    dropped point lies within ``tol_mm`` of the kept segment over it (ends always kept)."""
    m = len(p)
    if m < 3 or tol_mm <= 0:
        return np.arange(m)
    keep = np.zeros(m, bool)
    keep[0] = keep[-1] = True
    stack = [(0, m - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        d = p[b] - p[a]
        L2 = float(d @ d)
        q = p[a + 1:b] - p[a]
        if L2 > 0:
            t = np.clip(q @ d / L2, 0.0, 1.0)
            q = q - t[:, None] * d
        dist = np.einsum("ij,ij->i", q, q)
        i = int(np.argmax(dist))
        if dist[i] > tol_mm * tol_mm:
            k = a + 1 + i
            keep[k] = True
            stack += [(a, k), (k, b)]
    return np.flatnonzero(keep)


def merge_collinear(ps: Pass, tol_mm: float) -> Pass:
    """The pass with runs of CUT moves (same frame, feed and turntable angle) simplified
    to within ``tol_mm`` (Douglas-Peucker); other moves are kept as they are."""
    n = ps.n_moves
    if n < 3 or tol_mm <= 0:
        return ps
    cut = ps.kind == MoveKind.CUT
    same = np.ones(n, bool)
    same[1:] = (cut[1:] & cut[:-1] & (ps.feed_mm_s[1:] == ps.feed_mm_s[:-1])
                & (ps.turntable_rad[1:] == ps.turntable_rad[:-1])
                & np.all(np.abs(ps.tool_frame[1:] - ps.tool_frame[:-1]) < 1e-9, axis=(1, 2)))
    same[0] = False
    starts = np.flatnonzero(~same)
    keep = np.zeros(n, bool)
    # a run: its first move (kept: the frame, feed or kind changes on it) and the moves
    # that continue it
    for a, b in zip(starts, np.append(starts[1:], n)):
        if not cut[a] or b - a < 3:
            keep[a:b] = True
            continue
        keep[a + simplify_indices(ps.position_mm[a:b], tol_mm)] = True
    keep[(~cut)] = True
    idx = np.flatnonzero(keep)
    return Pass(position_mm=ps.position_mm[idx], tool_frame=ps.tool_frame[idx],
                feed_mm_s=ps.feed_mm_s[idx], kind=ps.kind[idx],
                turntable_rad=ps.turntable_rad[idx], name=ps.name, operation=ps.operation,
                strategy=ps.strategy, tool_id=ps.tool_id,
                setup_turntable_deg=ps.setup_turntable_deg, stats=ps.stats)


def split_long(ps: Pass, max_mm: float) -> Pass:
    """The pass with every CUT move longer than ``max_mm`` cut into equal pieces (same
    frame, feed and turntable angle): the arm's joints then change little between
    neighbouring moves (the robot solver refuses big joint steps while cutting)."""
    if ps.n_moves < 2 or max_mm <= 0:
        return ps
    seg = np.linalg.norm(np.diff(ps.position_mm, axis=0), axis=1)
    k = np.ones(ps.n_moves, int)
    k[1:] = np.where(ps.kind[1:] == MoveKind.CUT, np.ceil(seg / max_mm).astype(int), 1)
    k = np.maximum(k, 1)
    if (k == 1).all():
        return ps
    src = np.repeat(np.arange(ps.n_moves), k)  # each move i -> k[i] rows, ending at i
    step = np.concatenate([np.arange(1, n + 1) / n for n in k])
    prev = np.maximum(src - 1, 0)
    pos = ps.position_mm[prev] + step[:, None] * (ps.position_mm[src] - ps.position_mm[prev])
    return Pass(position_mm=pos, tool_frame=ps.tool_frame[src], feed_mm_s=ps.feed_mm_s[src],
                kind=ps.kind[src], turntable_rad=ps.turntable_rad[src], name=ps.name,
                operation=ps.operation, strategy=ps.strategy, tool_id=ps.tool_id,
                setup_turntable_deg=ps.setup_turntable_deg, stats=ps.stats)
