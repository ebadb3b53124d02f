"""The design and the stock as the planner sees them: a checked mesh with exact distance,
inside/outside and ray queries (open3d's BVH raycasting scene).

``Design.load`` is the boundary: a missing / unreadable / empty / open / self-intersecting
or metre-scale mesh becomes a `UserError` (one line naming the fix). A mesh with small
defects (duplicate vertices, flipped or degenerate faces, small holes) is repaired first.
The design is placed in its piece frame (base at z = 0, base centred on the axis); if the
file was not, it is moved there with a warning and ``JOB/design.stl`` holds the placed mesh.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sculptor.artifacts.core import warn
from sculptor.errors import UserError


def _scene(vertices: np.ndarray, faces: np.ndarray):
    import open3d as o3d

    sc = o3d.t.geometry.RaycastingScene()
    sc.add_triangles(o3d.core.Tensor(np.ascontiguousarray(vertices, np.float32)),
                     o3d.core.Tensor(np.ascontiguousarray(faces, np.uint32)))
    return sc


class MeshQuery:
    """Exact queries on a closed triangle mesh (mm).

    signed_distance(p (n, 3)) -> (n,) mm, negative inside.
    inside(p (n, 3)) -> (n,) bool.
    cast(origins (n, 3), dirs (n, 3)) -> t (n,) (inf: no hit), points (n, 3), normals
    (n, 3) smooth (vertex normals interpolated at the hit).
    """

    def __init__(self, mesh):
        self.mesh = mesh
        self.vertices = np.asarray(mesh.vertices, float)
        self.faces = np.asarray(mesh.faces, np.int64)
        self._scene = _scene(self.vertices, self.faces)
        self._vn = np.asarray(mesh.vertex_normals, float)
        self._edges = None
        self._tree = None
        self._adj = None

    @property
    def adjacency(self):
        if self._adj is None:
            from sculptor.cam.dropcutter import Adjacency

            self._adj = Adjacency(self.mesh)
        return self._adj

    @property
    def edges(self) -> np.ndarray:
        if self._edges is None:
            self._edges = np.asarray(self.mesh.edges_unique, np.int64)
        return self._edges

    def _t(self, p):
        import open3d as o3d

        return o3d.core.Tensor(np.ascontiguousarray(np.asarray(p).reshape(-1, 3), np.float32))

    def signed_distance(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, float)
        if len(p) == 0:
            return np.zeros(0)
        return self._scene.compute_signed_distance(self._t(p), nsamples=3).numpy().astype(float)

    def near_distance(self, p: np.ndarray, limit_mm: float) -> np.ndarray:
        """Signed distance, exact where |d| <= limit_mm; elsewhere only a lower bound of
        the same sign (far points skip the slow exact query: a KD-tree on the vertices
        bounds |d| from below by the vertex distance minus the longest edge)."""
        p = np.asarray(p, float).reshape(-1, 3)
        if len(p) == 0:
            return np.zeros(0)
        if self._tree is None:
            from scipy.spatial import cKDTree

            self._tree = cKDTree(self.vertices)
            e = self.vertices[self.edges]
            self._emax = float(np.linalg.norm(e[:, 0] - e[:, 1], axis=1).max())
        dv, _ = self._tree.query(p, k=1)
        lower = dv - self._emax
        far = lower > limit_mm
        out = np.empty(len(p))
        if far.any():
            out[far] = np.where(self.inside(p[far]), -lower[far], lower[far])
        if (~far).any():
            out[~far] = self.signed_distance(p[~far])
        return out

    def inside(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, float)
        if len(p) == 0:
            return np.zeros(0, bool)
        return self._scene.compute_occupancy(self._t(p), nsamples=3).numpy() > 0.5

    def cast(self, origins: np.ndarray, dirs: np.ndarray):
        import open3d as o3d

        o = np.asarray(origins, float).reshape(-1, 3)
        d = np.broadcast_to(np.asarray(dirs, float), o.shape)
        rays = np.concatenate([o, d], axis=1).astype(np.float32)
        ans = self._scene.cast_rays(o3d.core.Tensor(rays))
        t = ans["t_hit"].numpy().astype(float)
        prim = ans["primitive_ids"].numpy().astype(np.int64)
        uv = ans["primitive_uvs"].numpy().astype(float)
        hit = np.isfinite(t)
        pts = o + d * np.where(hit, t, 0)[:, None]
        nrm = np.zeros_like(o)
        if hit.any():
            f = self.faces[prim[hit]]
            w = np.stack([1 - uv[hit, 0] - uv[hit, 1], uv[hit, 0], uv[hit, 1]], axis=1)
            n = (self._vn[f] * w[:, :, None]).sum(1)
            n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
            nrm[hit] = n
        return np.where(hit, t, np.inf), pts, nrm


def load_mesh(path: Path, what: str = "design"):
    """Read a mesh file into one trimesh.Trimesh, or raise UserError."""
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} mesh not found: {path}")
    try:
        m = trimesh.load(path, force="mesh", process=True)
    except Exception as e:  # noqa: BLE001 - any parser failure is a bad file
        raise UserError(f"cannot read {what} mesh {path} ({e.__class__.__name__}); give an "
                        "STL, PLY or OBJ triangle mesh")
    if not isinstance(m, trimesh.Trimesh) or len(m.faces) == 0:
        raise UserError(f"{what} mesh {path} holds no triangles; give a closed triangle mesh")
    if not np.isfinite(m.vertices).all():
        raise UserError(f"{what} mesh {path} has NaN/inf vertices; re-export it")
    return m


def _repair(m):
    import trimesh

    m = m.copy()
    m.merge_vertices()
    m.update_faces(m.nondegenerate_faces())
    m.update_faces(m.unique_faces())
    m.remove_unreferenced_vertices()
    if not m.is_watertight:
        trimesh.repair.fill_holes(m)
    trimesh.repair.fix_normals(m)
    return m


def check_closed(m, path: Path, what: str = "design"):
    """Repair small defects; raise UserError for an open or self-intersecting mesh."""
    if not m.is_watertight or not m.is_winding_consistent or m.volume <= 0:
        r = _repair(m)
        if not r.is_watertight:
            raise UserError(f"{what} mesh {path} is not watertight (open boundary with "
                            f"{len(r.faces)} faces after hole filling); close it (e.g. "
                            "re-mesh it from its SDF) before planning")
        warn(f"{what} mesh {path} had defects (open seams/flipped faces); repaired")
        m = r
    if m.volume <= 0:
        raise UserError(f"{what} mesh {path} encloses no volume; check its normals")
    if _self_intersects(m):
        raise UserError(f"{what} mesh {path} intersects itself; re-mesh it (e.g. from its SDF)"
                        " so that inside and outside are defined")
    return m


def _self_intersects(m) -> bool:
    """Self-intersection test on the mesh (open3d), skipped for very large meshes where
    the test would dominate planning; there the signed volume vs. the ray-parity volume
    serves as the check."""
    import open3d as o3d

    if len(m.faces) <= 60_000:
        lm = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(np.asarray(m.vertices)),
                                       o3d.utility.Vector3iVector(np.asarray(m.faces)))
        return bool(lm.is_self_intersecting())
    rng = np.random.default_rng(0)
    lo, hi = m.bounds
    p = rng.uniform(lo, hi, size=(20000, 3))
    occ = MeshQuery(m).inside(p).mean() * np.prod(hi - lo)
    return abs(occ - m.volume) > 0.05 * m.volume


def place_in_piece_frame(m, path: Path):
    """Move the mesh so its base is at z = 0 and its xy bounding box is centred."""
    lo, hi = m.bounds
    shift = np.array([-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2]])
    if np.abs(shift).max() > 0.5:
        warn(f"design {path} was not in its piece frame (base at z=0, centred); moved by "
             f"{np.round(shift, 1).tolist()} mm (JOB/design.stl holds the placed mesh)")
    if np.abs(shift).max() > 0.0:
        m = m.copy()
        m.apply_translation(shift)
    return m


def load_design(path: Path):
    """The design mesh, checked, repaired if needed, placed in its piece frame."""
    m = load_mesh(path)
    ext = float(np.max(m.extents))
    if ext < 10.0:
        raise UserError(f"design {path} is only {ext:.3g} units across; designs are in mm "
                        "(scale it, e.g. x1000 if it is in metres)")
    if ext > 5000.0:
        raise UserError(f"design {path} is {ext:.0f} mm across; that is not a carving job "
                        "(is it in micrometres?)")
    m = check_closed(m, path)
    return place_in_piece_frame(m, path)


class Stock:
    """The block the piece is carved from: a box (x, y, z mm, base at z=0, centred) or a
    closed mesh in the piece frame."""

    def __init__(self, kind: str, size_mm: tuple[float, float, float] | None = None,
                 mesh=None, path: str | None = None):
        self.kind = kind
        self.size_mm = size_mm
        self.mesh = mesh
        self.path = path
        if kind == "box":
            sx, sy, sz = size_mm  # type: ignore[misc]
            self.bounds = np.array([[-sx / 2, -sy / 2, 0.0], [sx / 2, sy / 2, sz]])
            self._q = None
        else:
            self.bounds = np.asarray(mesh.bounds, float)
            self._q = MeshQuery(mesh)

    def inside(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, float)
        if self.kind == "box":
            lo, hi = self.bounds
            return np.all((p >= lo) & (p <= hi), axis=1)
        return self._q.inside(p)  # type: ignore[union-attr]


def parse_stock(stock: str | None, stock_mesh: Path | None, default_mm) -> Stock:
    if stock is not None and stock_mesh is not None:
        raise UserError("give either --stock or --stock-mesh, not both")
    if stock_mesh is not None:
        m = check_closed(load_mesh(stock_mesh, "stock"), Path(stock_mesh), "stock")
        return Stock("mesh", mesh=m, path=str(stock_mesh))
    if stock is None:
        return Stock("box", size_mm=tuple(float(x) for x in default_mm))
    parts = stock.lower().replace("*", "x").split("x")
    try:
        size = tuple(float(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) != 3 or not all(np.isfinite(size)):
        raise UserError(f"--stock '{stock}' is not XxYxZ in mm (e.g. 220x220x450)")
    if min(size) <= 0:
        raise UserError(f"--stock '{stock}': every side must be positive")
    return Stock("box", size_mm=size)  # type: ignore[arg-type]


def check_fits(design, stock: Stock, allowance_mm: float) -> None:
    """UserError if the design does not fit in the stock."""
    lo, hi = design.bounds
    slo, shi = stock.bounds
    if stock.kind == "box":
        over = np.maximum(slo - lo, 0) + np.maximum(hi - shi, 0)
        if over.max() > 1e-6:
            raise UserError(
                f"design ({np.round(hi - lo, 1).tolist()} mm) is larger than the stock "
                f"({np.round(shi - slo, 1).tolist()} mm) by {np.round(over, 1).tolist()} mm "
                "in x, y, z; give a bigger --stock or scale the design")
        return
    v = np.asarray(design.vertices)
    idx = np.random.default_rng(0).choice(len(v), min(len(v), 20000), replace=False)
    out = ~stock.inside(v[idx])
    if out.any():
        p = v[idx][out]
        raise UserError(f"design sticks out of the stock mesh at {out.sum()} of "
                        f"{len(idx)} sampled vertices (e.g. near {np.round(p[0], 1).tolist()}"
                        " mm); give a bigger stock or move the design")
