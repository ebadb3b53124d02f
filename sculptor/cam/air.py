"""Air moves between gouge strokes that keep the whole tool clear of the design and the wood.

A link from where one stroke lifted out (a) to where the next one comes in (b) is a
polyline of rapid moves. Candidates, in order (the first that is clear and that the arm
reaches wins):

1. straight from a to b;
2. out along the band's approach direction f by 10, 25 or 50 mm, across, and back in;
3. out to the band's *safe plane* (normal f, ``SAFE_MM`` beyond the design's furthest
   point along f), across in the plane, and back in.

*Clear* means, at every sample (<= ``STEP_MM`` apart) of every leg, the tool frame
turning from the one end's to the other's along the first leg (as the controller does):
every point of the gouge's cutting shape (edge, bevel) stays ``AIR_CLEAR_MM`` outside the
design; the tool centre stays out of *thick rest* (wood the roughing left more than a
voxel plus the allowance off the design: fins, corners of the block; from the stock
model) and ``REST_MARGIN_MM`` above the *skin of rest* over the surface: the thickest
rest left at the band's stroke points within ``REST_R_MM`` (from the stock model before
finishing, lowered as the strokes cut it). Lead-in and lift-out points are chosen above
that skin too, so no rapid drives through wood.

Plunges (lead-in to the stroke's first point) and lift-outs are cutting moves; they are
checked the same way against the design with the gouge tolerance (``check_entry``).

Passes start and end on the *parking cylinder* (side bands: radius ``SAFE_MM`` beyond
the stock about the turntable axis; top band: ``SAFE_MM`` above the stock), where the
turntable may turn without the tool meeting wood.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from sculptor.cam.toolshape import GOUGE_TOL_MM, gouge_body_points, gouge_cutting_points, \
    to_piece

AIR_CLEAR_MM = 2.0   # cutting shape to design on air moves
SAFE_MM = 15.0       # safe plane / parking beyond the design / stock
STEP_MM = 3.0        # samples along a leg
OUT_MM = (10.0, 25.0, 50.0)
NEAR_END_MM = 15.0   # thick rest is not checked this close to a stroke's lead or lift-out
REST_R_MM = 8.0      # the rest under an air move: thickest at surface points this near
REST_MARGIN_MM = 3.0  # tool centre above that rest (the edge lies about the centre), plus
#                       half a stock-model voxel (the rest is known to that step)
WOOD_CLEAR_MM = 6.0  # tool centre to thick rest (the edge is 6 mm wide each side)


class AirRoutes:
    """Air routes for the gouge finishing of one design: the thick rest is read once from
    the stock model; the skin of rest is set per band (:meth:`set_rest`)."""

    def __init__(self, query, stock_model, tool, reach, allowance_mm: float = 1.0):
        self.q = query
        self.reach = reach
        self.cut_local = gouge_cutting_points(tool)
        self.body_local = gouge_body_points(tool)
        self.rest_margin = REST_MARGIN_MM + stock_model.voxel_mm / 2
        self.r_tool = float(np.linalg.norm(self.cut_local, axis=1).max())
        self.v = np.asarray(query.vertices, float)
        self._thick, self._thick_pts = _thick_rest_field(stock_model, query, allowance_mm)
        lo, hi = stock_model.origin, stock_model.origin + (np.asarray(stock_model.shape) - 1) \
            * stock_model.voxel_mm
        corners = np.array(np.meshgrid(*zip(lo, hi), indexing="ij")).reshape(3, -1).T
        vox = stock_model.voxel_mm / 2
        self.park_r = float(np.linalg.norm(corners[:, :2], axis=1).max()) + vox + SAFE_MM
        self.park_z = float(hi[2]) + vox + SAFE_MM
        self._rest, self._rest_tree = np.zeros(0), None
        self.stats = {"links": 0, "direct": 0, "out": 0, "plane": 0, "none": 0,
                      "entries_refused": 0, "refused_wood": 0, "refused_design": 0,
                      "refused_reach": 0, "refused_rest": 0}

    # ---------------------------------------------------------------- checks
    def thick_distance(self, p: np.ndarray) -> np.ndarray:
        """(m,) mm from points (m, 3) to the nearest thick rest voxel (inf: none)."""
        dist, origin, cell = self._thick
        if dist is None:
            return np.full(len(p), np.inf)
        idx = np.rint((p - origin) / cell).astype(np.int64)
        n = np.asarray(dist.shape)
        ok = np.all((idx >= 0) & (idx < n), axis=1)
        out = np.full(len(p), np.inf)
        out[ok] = dist[tuple(idx[ok].T)]
        # outside the grid: at least the gap to the grid's box, and at least the distance
        # at the nearest grid point less the way to it (triangle inequality)
        if (~ok).any():
            lo, hi = origin, origin + (n - 1) * cell
            gap = np.linalg.norm(np.maximum(np.maximum(lo - p[~ok], p[~ok] - hi), 0.0), axis=1)
            ci = np.clip(idx[~ok], 0, n - 1)
            out[~ok] = np.maximum(gap, dist[tuple(ci.T)] - gap - cell)
        return out

    # ---------------------------------------------------------------- the skin of rest
    def set_rest(self, points: np.ndarray, rest_mm: np.ndarray) -> None:
        """The rest over the design at surface points (k, 3) (mm along the normal, from
        the stock model), for the band being planned; lowered by :meth:`cut_rest`."""
        from scipy.spatial import cKDTree

        self._rest = np.asarray(rest_mm, float).copy()
        self._rest_tree = cKDTree(points) if len(points) else None

    def cut_rest(self, sl: slice, to_mm: float) -> None:
        """Strokes over the points ``sl`` have cut the rest there down to ``to_mm``."""
        self._rest[sl] = np.minimum(self._rest[sl], to_mm)

    def rest_near(self, p: np.ndarray) -> np.ndarray:
        """(m,) the thickest rest left at the surface points within ``REST_R_MM`` of each
        point (0 where none)."""
        if self._rest_tree is None or len(p) == 0:
            return np.zeros(len(p))
        d, i = self._rest_tree.query(p, k=12, distance_upper_bound=REST_R_MM)
        i = np.minimum(i, len(self._rest) - 1)
        return np.where(np.isfinite(d), self._rest[i], 0.0).max(1)

    def clear(self, pts: np.ndarray, frames: np.ndarray, margin_mm: float = AIR_CLEAR_MM,
              wood: np.ndarray | bool = True) -> bool:
        """Whether the tool at every point of ``pts`` (m, 3) with its frame (``frames``
        (m, 3, 3) or one (3, 3)) keeps ``margin_mm`` off the design and, where ``wood``
        (bool or (m,) mask), out of thick rest (the stock model)."""
        if len(pts) == 0:
            return True
        w = np.broadcast_to(np.asarray(wood, bool), (len(pts),))
        if w.any() and (self.thick_distance(pts[w]) < WOOD_CLEAR_MM).any():
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
        fr = np.broadcast_to(frames, (len(pts), 3, 3))[close]
        sd = self.q.near_distance(to_piece(pts[close], fr, self.cut_local).reshape(-1, 3), far)
        if sd.min() < margin_mm:
            self.stats["refused_design"] += 1
            return False
        return True

    def body_clear(self, pos: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """(m,) bool: the shank and holder surfaces (toolshape.gouge_body_points) at
        poses (pos (m, 3), frames (m, 3, 3)) stay outside the thick rest."""
        if len(pos) == 0 or self._thick[0] is None:
            return np.ones(len(pos), bool)
        pts = to_piece(pos, frames, self.body_local).reshape(-1, 3)
        return (self.thick_distance(pts).reshape(len(pos), -1) > 0.0).all(1)

    def check_entry(self, a: np.ndarray, b: np.ndarray, frame: np.ndarray) -> bool:
        """A plunge or lift-out from a to b at one frame cuts nothing of the design."""
        n = max(2, int(math.ceil(np.linalg.norm(b - a) / 1.0)) + 1)
        pts = np.linspace(a, b, n)[1:-1]
        ok = self.clear(pts, frame, margin_mm=-GOUGE_TOL_MM, wood=False)
        if not ok:
            self.stats["entries_refused"] += 1
        return ok

    def _legs_clear(self, way: list[np.ndarray], fa, fb) -> bool:
        """The polyline ``way`` is clear, the tool turning from frame fa to fb along its
        first leg (the controller interpolates the orientation) and holding fb after."""
        from scipy.spatial.transform import Rotation, Slerp

        pts, frames = [], []
        turn = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([fa, fb])))
        for i, (p, q) in enumerate(zip(way[:-1], way[1:])):
            n = max(2, int(math.ceil(np.linalg.norm(q - p) / STEP_MM)) + 1)
            t = np.linspace(0.0, 1.0, n)[1:] if i else np.linspace(0.0, 1.0, n)
            pts.append(p + t[:, None] * (q - p))
            frames.append(turn(t).as_matrix() if i == 0 else np.broadcast_to(fb, (len(t), 3, 3)))
        pts = np.concatenate(pts)
        # near the strokes' ends the tool meets the skin of rest the strokes cut
        wood = np.minimum(np.linalg.norm(pts - way[0], axis=1),
                          np.linalg.norm(pts - way[-1], axis=1)) > NEAR_END_MM
        if not self.clear(pts, np.concatenate(frames), wood=wood):
            return False
        # and above the skin of rest (the end points, lead-in and lift-out, are chosen so)
        return self._skin_clear(pts[1:-1])

    def _skin_clear(self, pts: np.ndarray) -> bool:
        """The tool centre keeps ``rest_margin`` (``REST_MARGIN_MM`` + half a stock voxel)
        above the rest left near each point."""
        if len(pts) == 0:
            return True
        d = self.q.near_distance(pts, self.r_tool)
        if (d < self.rest_near(pts) + self.rest_margin).any():
            self.stats["refused_rest"] += 1
            return False
        return True

    def above_rest(self, p: np.ndarray) -> bool:
        """A lead-in or lift-out point is above the skin of rest."""
        return self._skin_clear(np.asarray(p, float).reshape(1, 3))

    def reaches(self, pts: np.ndarray, frame, theta) -> bool:
        if self.reach is None or len(pts) == 0:
            return True
        return bool(self.reach.ok(pts, np.broadcast_to(frame, (len(pts), 3, 3)), theta).all())

    # ---------------------------------------------------------------- routes
    def plane_height(self, f: np.ndarray) -> float:
        """Height along f of the safe plane: beyond the design and the thick rest."""
        h = float((self.v @ f).max())
        if len(self._thick_pts):
            h = max(h, float((self._thick_pts @ f).max()) + self._thick[2] / 2)
        return h + SAFE_MM

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


def _thick_rest_field(stock_model, query, allowance_mm: float):
    """((distance field (voxel grid, mm), origin, voxel), centres (k, 3)) of the wood more
    than a voxel plus the allowance off the design."""
    vi = np.flatnonzero(stock_model.material)
    vox = stock_model.voxel_mm
    none = (None, stock_model.origin, vox), np.zeros((0, 3))
    if len(vi) == 0:
        return none
    d = query.near_distance(stock_model.centers[vi], vox + allowance_mm + 1.0)
    thick = vi[d > vox + allowance_mm]
    if len(thick) == 0:
        return none
    mask = np.zeros(stock_model.shape, bool)
    mask.reshape(-1)[thick] = True
    dist = ndimage.distance_transform_edt(~mask) * vox - vox / 2
    return ((np.maximum(dist, 0.0).astype(np.float32), np.asarray(stock_model.origin, float),
             vox), stock_model.centers[thick])
