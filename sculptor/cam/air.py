"""Air moves between gouge strokes that keep the whole tool clear of the design and the wood.

A link from where one stroke lifted out (a) to where the next one comes in (b) is a
polyline of rapid moves. Candidates, in order (the first that is clear and that the arm
reaches wins):

1. straight from a to b;
2. out along the band's approach direction f by 10, 25 or 50 mm, across, and back in;
3. out to the band's *safe plane* (normal f, ``SAFE_MM`` beyond the design's and the
   wood's furthest point along f), across in the plane, and back in.

*Clear* means, at every sample (<= ``STEP_MM`` apart) of every leg, the tool frame
turning from the one end's to the other's along the first leg (as the controller does):
every point of the gouge's cutting shape stays ``AIR_CLEAR_MM`` outside the design and
``AIR_WOOD_MM`` off the wood left at that moment, and the shank, holder and the arm's
last link keep their radius off it (:mod:`sculptor.cam.wood`: the wood the roughing left,
less what the strokes planned so far cut). Lead-in and lift-out points are chosen clear of
the wood too, so no rapid drives through wood.

Plunges (lead-in to the stroke's first point) and lift-outs are cutting moves; they are
checked against the design with the gouge tolerance (``check_entry``).

Passes start and end on the *parking cylinder* (side bands: radius ``SAFE_MM`` beyond
the stock about the turntable axis; top band: ``SAFE_MM`` above the stock), where the
turntable may turn without the tool meeting wood.
"""

from __future__ import annotations

import math

import numpy as np
from sculptor.cam.toolshape import GOUGE_TOL_MM, gouge_cutting_points, to_piece
from sculptor.cam.wood import AIR_WOOD_MM, BodyCheck, WoodGrid

AIR_CLEAR_MM = 2.0   # cutting shape to design on air moves
SAFE_MM = 15.0       # safe plane / parking beyond the design / stock
STEP_MM = 3.0        # samples along a leg
OUT_MM = (10.0, 25.0, 50.0)


class AirRoutes:
    """Air routes for the gouge finishing of one design, checked against ``wood`` (a
    :class:`WoodGrid` the finishing keeps up to date as it plans strokes)."""

    def __init__(self, query, wood: WoodGrid, tool, reach, body: BodyCheck):
        self.q = query
        self.wood = wood
        self.reach = reach
        self.body = body
        self.cut_local = gouge_cutting_points(tool)
        self.r_tool = float(np.linalg.norm(self.cut_local, axis=1).max())
        self.v = np.asarray(query.vertices, float)
        vox = wood.voxel_mm
        lo = wood.origin - vox / 2
        hi = wood.origin + (np.asarray(wood.occ.shape) - 0.5) * vox
        corners = np.array(np.meshgrid(*zip(lo, hi), indexing="ij")).reshape(3, -1).T
        self.park_r = float(np.linalg.norm(corners[:, :2], axis=1).max()) + SAFE_MM
        self.park_z = float(hi[2]) + SAFE_MM
        self._plane: dict[tuple, float] = {}
        self.stats = {"links": 0, "direct": 0, "out": 0, "plane": 0, "none": 0,
                      "entries_refused": 0, "refused_wood": 0, "refused_design": 0,
                      "refused_reach": 0}

    # ---------------------------------------------------------------- checks
    def clear(self, pts: np.ndarray, frames: np.ndarray, margin_mm: float = AIR_CLEAR_MM,
              wood: bool = True) -> bool:
        """Whether the tool at every point of ``pts`` (m, 3) with its frame (``frames``
        (m, 3, 3) or one (3, 3)) keeps ``margin_mm`` off the design and, with ``wood``,
        its cutting shape ``AIR_WOOD_MM`` and its body its radius off the wood."""
        if len(pts) == 0:
            return True
        fr = np.broadcast_to(frames, (len(pts), 3, 3))
        if wood and not self._wood_clear(pts, fr):
            self.stats["refused_wood"] += 1
            return False
        far = self.r_tool + margin_mm
        d = self.q.near_distance(pts, far)
        if (d < -self.r_tool).any():
            self.stats["refused_design"] += 1
            return False
        close = d < far
        if not close.any():
            return True
        sd = self.q.near_distance(to_piece(pts[close], fr[close], self.cut_local)
                                  .reshape(-1, 3), far)
        if sd.min() < margin_mm:
            self.stats["refused_design"] += 1
            return False
        return True

    def _wood_clear(self, pts: np.ndarray, fr: np.ndarray) -> bool:
        if not self.wood.clear(to_piece(pts, fr, self.cut_local).reshape(-1, 3),
                               AIR_WOOD_MM).all():
            return False
        return bool(self.body.clear(self.wood, pts, fr).all())

    def body_clear(self, pos: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """(m,) bool: the shank, holder (and the arm's last link) at poses (pos (m, 3),
        frames (m, 3, 3)) keep off the wood left now."""
        return self.body.clear(self.wood, pos, frames)

    def check_entry(self, a: np.ndarray, b: np.ndarray, frame: np.ndarray) -> bool:
        """A plunge or lift-out from a to b at one frame cuts nothing of the design (the
        edge cuts wood on the way, so only the body is kept off the wood: the controller
        passes poses between the ends)."""
        n = max(2, int(math.ceil(np.linalg.norm(b - a) / 1.0)) + 1)
        pts = np.linspace(a, b, n)[1:-1]
        ok = self.clear(pts, frame, margin_mm=-GOUGE_TOL_MM, wood=False) and bool(
            self.body.clear(self.wood, pts, np.broadcast_to(frame, (len(pts), 3, 3))).all())
        if not ok:
            self.stats["entries_refused"] += 1
        return ok

    def _legs_clear(self, way: list[np.ndarray], fa, fb) -> bool:
        """The polyline ``way`` is clear, the tool turning from frame fa to fb along its
        first leg (the controller interpolates the orientation) and holding fb after."""
        from sculptor.robot.solver import turn_rotations

        pts, frames = [], []
        for i, (p, q) in enumerate(zip(way[:-1], way[1:])):
            n = max(2, int(math.ceil(np.linalg.norm(q - p) / STEP_MM)) + 1)
            t = np.linspace(0.0, 1.0, n)[1:] if i else np.linspace(0.0, 1.0, n)
            pts.append(p + t[:, None] * (q - p))
            frames.append(turn_rotations(fa, fb, t) if i == 0
                          else np.broadcast_to(fb, (len(t), 3, 3)))
        return self.clear(np.concatenate(pts), np.concatenate(frames))

    def reaches(self, pts: np.ndarray, frame, theta) -> bool:
        if self.reach is None or len(pts) == 0:
            return True
        return bool(self.reach.ok(pts, np.broadcast_to(frame, (len(pts), 3, 3)), theta).all())

    # ---------------------------------------------------------------- routes
    def plane_height(self, f: np.ndarray) -> float:
        """Height along f of the safe plane: beyond the design and the wood (as it was
        when first asked for this f: wood only goes)."""
        key = tuple(np.round(f, 9))
        if key not in self._plane:
            self._plane[key] = max(float((self.v @ f).max()), self.wood.extent_along(f)) \
                + SAFE_MM
        return self._plane[key]

    def link(self, a, fa, b, fb, f, theta) -> np.ndarray | None:
        """Intermediate waypoints (k, 3) (possibly k = 0) of a clear route from a to b,
        or None if no candidate is clear and reachable."""
        self.stats["links"] += 1
        H = self.plane_height(f)
        cands: list[tuple[str, list]] = [("direct", [])]
        cands += [("out", [a + f * d, b + f * d]) for d in OUT_MM]
        cands.append(("plane", [a + f * max(H - a @ f, 0.0), b + f * max(H - b @ f, 0.0)]))
        for name, mid in cands:
            way = [a, *mid, b]
            if mid and not self.reaches(np.array(mid), fb, theta):
                self.stats["refused_reach"] += 1
                continue
            if self._legs_clear(way, fa, fb):
                self.stats[name] += 1
                return np.array(mid).reshape(-1, 3)
        self.stats["none"] += 1
        return None

    def park(self, p: np.ndarray, f: np.ndarray, top: bool) -> np.ndarray:
        """The parking point for p: out along f (side band) to the parking cylinder, or
        straight up above the stock (top band)."""
        if top:
            return np.array([p[0], p[1], max(p[2], self.park_z)])
        r = float(np.hypot(p[0], p[1]))
        fh = np.array([f[0], f[1], 0.0])
        fh /= max(np.linalg.norm(fh), 1e-12)
        # smallest t >= 0 with |(p + t fh)_xy| >= park_r
        pb = float(p[:2] @ fh[:2])
        disc = pb * pb - (r * r - self.park_r ** 2)
        t = max(0.0, -pb + math.sqrt(max(disc, 0.0)))
        return p + fh * t

    def park_route(self, p, frame, f, theta, top: bool, inward: bool) -> np.ndarray | None:
        """Waypoints from the parking point to p (inward) or from p to it: [park] if the
        leg is clear and the arm reaches the parking point, else via the safe plane;
        None if neither."""
        k = self.park(p, f, top)
        if top:
            opts = [[k]]
        else:
            H = self.plane_height(f)
            opts = [[k], [p + f * max(H - p @ f, 0.0), k]]
        for way in opts:
            way = [np.asarray(w, float) for w in way]
            if not self.reaches(np.array(way), frame, theta):
                continue
            legs = [p, *way] if not inward else [*way[::-1], p]
            if self._legs_clear(legs, frame, frame):
                pts = np.array(way if not inward else way[::-1])
                return pts
        return None

