"""Pieces and the corpus: SDF -> watertight mesh (marching cubes) + dataset grid.

``make_piece(seed, kind)`` draws one carving; ``generate_corpus(n, seed, out, ...)`` writes
``n`` of them as a dataset (the layout of ``sculptor scan prepare``: see
:mod:`sculptor.dataset`) with ``gallery.png``. Everything is a pure function of the seed.
"""

from __future__ import annotations

import math
import os
import shlex
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import trimesh
from scipy import ndimage
from skimage.measure import marching_cubes

from sculptor.artifacts.core import Provenance, atomic_output_dir
from sculptor.artifacts.sdf import (
    TRUNCATION_VOXELS, DatasetManifest, grid_world_from_voxel, voxel_centers,
)
from sculptor.corpus.figures import KINDS, STYLE, build
from sculptor.corpus.sdf import F32, Points, scallops
from sculptor.dataset import PreparedPiece, write_dataset
from sculptor.errors import UserError

HEIGHT_RANGE_MM = {"standing": (300.0, 580.0), "bust": (250.0, 420.0),
                   "seated": (260.0, 480.0), "abstract": (260.0, 560.0)}
KIND_WEIGHTS = {"standing": 0.4, "bust": 0.2, "seated": 0.2, "abstract": 0.2}
MIN_RES = 16
MAX_RES = 256
MESH_VOXEL_MM = 2.5
_MAX_ATTEMPTS = 6
# gouge stroke families: fixed, the carver's habit
_GOUGE_DIRS = np.array([[0.62, -0.48, 0.62], [-0.55, -0.70, 0.45], [0.20, 0.85, 0.49]])
_GOUGE_DIRS /= np.linalg.norm(_GOUGE_DIRS, axis=1, keepdims=True)


def default_dataset_path() -> Path:
    """The dataset shipped in the package (``sculptor/data/corpus``)."""
    return Path(__file__).resolve().parents[1] / "data" / "corpus"


@dataclass
class PieceSdf:
    """The signed distance (mm, piece frame) of one piece before meshing."""

    kind: str
    seed: int
    height_mm: float  # nominal (target) height
    params: dict

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self._f, drawn = build(self.kind, rng)
        self.params = {**self.params, **drawn}

    def __call__(self, P: Points) -> np.ndarray:
        """P: (x, y, z) arrays of (n,) float32 mm -> (n,) float32 mm, negative inside."""
        H = F32(self.height_mm)
        d = self._f((P[0] / H, P[1] / H, P[2] / H)) * H
        d = d + scallops(P, STYLE["gouge_pitch_mm"], STYLE["gouge_depth_mm"], _GOUGE_DIRS)
        return np.maximum(d, -P[2])  # sawn flat underneath

    def eval_grid(self, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray,
                  mask: np.ndarray | None = None, chunk: int = 1 << 18) -> np.ndarray:
        """Values on the grid xs x ys x zs ((nx,), (ny,), (nz,) mm) as (nx, ny, nz)
        float32; where ``mask`` is False the result is NaN (not evaluated)."""
        shape = (len(xs), len(ys), len(zs))
        out = np.full(shape, np.nan, np.float32)
        idx = np.flatnonzero(mask) if mask is not None else np.arange(out.size)
        flat = out.reshape(-1)
        for s in range(0, len(idx), chunk):
            ii = idx[s:s + chunk]
            i, r = np.divmod(ii, shape[1] * shape[2])
            j, k = np.divmod(r, shape[2])
            flat[ii] = self((xs[i].astype(F32), ys[j].astype(F32), zs[k].astype(F32)))
        return out


def _axis(lo: float, hi: float, h: float) -> np.ndarray:
    """Sample positions (cell centres) covering [lo, hi] with spacing h, aligned so that
    z = 0 falls half-way between two samples (the base plane lands exactly on 0)."""
    k0 = math.floor(lo / h - 0.5) - 1
    k1 = math.ceil(hi / h - 0.5) + 1
    return ((np.arange(k0, k1 + 1) + 0.5) * h).astype(np.float64)


def _mesh(sdf: PieceSdf, mesh_voxel_mm: float) -> trimesh.Trimesh:
    """Marching cubes of the piece on a narrow band around its surface."""
    H = sdf.height_mm
    cv = H / 40.0
    cx, cy, cz = _axis(-0.5 * H, 0.5 * H, cv), _axis(-0.5 * H, 0.5 * H, cv), _axis(0, 1.12 * H, cv)
    coarse = sdf.eval_grid(cx, cy, cz)
    inside = np.argwhere(coarse < 0)
    if len(inside) == 0:
        raise RuntimeError("empty piece")
    lo = np.array([cx[inside[:, 0].min()], cy[inside[:, 1].min()], cz[inside[:, 2].min()]])
    hi = np.array([cx[inside[:, 0].max()], cy[inside[:, 1].max()], cz[inside[:, 2].max()]])
    if (inside.min(0) == 0).any() or (inside.max(0) == np.array(coarse.shape) - 1).any():
        raise RuntimeError("piece leaves its sampling box")
    h = max(mesh_voxel_mm, float(np.prod(hi - lo + 4 * cv) / 1.5e6) ** (1 / 3))
    fx = _axis(lo[0] - 1.5 * cv, hi[0] + 1.5 * cv, h)
    fy = _axis(lo[1] - 1.5 * cv, hi[1] + 1.5 * cv, h)
    fz = _axis(max(lo[2] - 1.5 * cv, -2 * h), hi[2] + 1.5 * cv, h)
    # coarse values interpolated onto the fine grid decide where the surface can be
    approx = coarse
    for axis, (fine, crs) in enumerate(((fx, cx), (fy, cy), (fz, cz))):
        approx = np.moveaxis(np.tensordot(_lerp_matrix(fine, crs), approx, axes=([1], [axis])),
                             0, axis)
    approx = approx.astype(np.float32)
    band = 1.2 * cv + STYLE["gouge_depth_mm"] + h
    near = np.abs(approx) < band
    vals = sdf.eval_grid(fx, fy, fz, near)
    vals = np.where(near, vals, approx)
    vals[[0, -1]] = np.abs(vals[[0, -1]]) + h  # closed box: every face of it outside
    vals[:, [0, -1]] = np.abs(vals[:, [0, -1]]) + h
    vals[:, :, [0, -1]] = np.abs(vals[:, :, [0, -1]]) + h
    vals = fill_voids(vals)
    v, f, _, _ = marching_cubes(vals, 0.0, spacing=(h, h, h), allow_degenerate=False)
    v += np.array([fx[0], fy[0], fz[0]])
    v[np.abs(v[:, 2]) < 1e-6 * h, 2] = 0.0
    mesh = trimesh.Trimesh(v, f, process=True)
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def _lerp_matrix(fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """(len(fine), len(coarse)) weights of linear interpolation from the coarse samples
    (uniform, ascending) to the fine positions (clamped at the ends)."""
    t = np.clip((fine - coarse[0]) / (coarse[1] - coarse[0]), 0, len(coarse) - 1)
    i0 = np.minimum(np.floor(t).astype(int), len(coarse) - 2)
    w = t - i0
    m = np.zeros((len(fine), len(coarse)), np.float32)
    rows = np.arange(len(fine))
    m[rows, i0] = 1 - w
    m[rows, i0 + 1] += w
    return m


def fill_voids(vals: np.ndarray) -> np.ndarray:
    """Mark as inside every outside pocket not connected to the grid's border (a solid
    carving has no sealed cavities; the composed SDF can leave tiny ones)."""
    lab, n = ndimage.label(vals > 0)
    if n <= 1:
        return vals
    border = np.unique(np.concatenate([lab[[0, -1]].ravel(), lab[:, [0, -1]].ravel(),
                                       lab[:, :, [0, -1]].ravel()]))
    sealed = (lab > 0) & ~np.isin(lab, border)
    if sealed.any():
        vals = vals.copy()
        vals[sealed] = -np.abs(vals[sealed])
    return vals


def _check(mesh: trimesh.Trimesh) -> str | None:
    """Why a mesh is not a valid piece (None when it is)."""
    if not mesh.is_watertight:
        return "not watertight"
    if mesh.body_count != 1:
        return f"{mesh.body_count} components"
    v = np.asarray(mesh.vertices)
    if abs(v[:, 2].min()) > 1e-6:
        return "does not stand at z = 0"
    base = _base_faces(mesh)
    ext = v.max(0) - v.min(0)
    if _area(mesh, base) < 0.01 * ext[0] * ext[1]:
        return "no flat base"
    if not _inside_base(mesh, base, np.asarray(mesh.center_mass)[:2]):
        return "tips over (centre of mass outside its base)"
    return None


def footprint_mm2(mesh: trimesh.Trimesh) -> float:
    """Area of the flat underside (faces at z = 0 facing down), mm^2."""
    return _area(mesh, _base_faces(mesh))


def _area(mesh: trimesh.Trimesh, faces: np.ndarray) -> float:
    v = np.asarray(mesh.vertices)
    f = np.asarray(mesh.faces)[faces]
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return float(0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1).sum())


def _base_faces(mesh: trimesh.Trimesh) -> np.ndarray:
    """Indices of the faces lying in z = 0 and facing down."""
    v = np.asarray(mesh.vertices)
    f = np.asarray(mesh.faces)
    on0 = np.abs(v[:, 2]) < 1e-6
    cand = np.flatnonzero(on0[f].all(1))
    a, b, c = v[f[cand, 0]], v[f[cand, 1]], v[f[cand, 2]]
    nz = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    return cand[nz < 0]


def _inside_base(mesh: trimesh.Trimesh, base: np.ndarray, xy: np.ndarray) -> bool:
    from scipy.spatial import ConvexHull, Delaunay

    pts = np.asarray(mesh.vertices)[np.unique(np.asarray(mesh.faces)[base])][:, :2]
    if len(pts) < 3:
        return False
    hull = pts[ConvexHull(pts).vertices]
    return bool(Delaunay(hull).find_simplex(xy[None])[0] >= 0)


def _piece_sdf(seed: int, kind: str, attempt: int) -> PieceSdf:
    rng = np.random.default_rng([seed, attempt, 7])
    lo, hi = HEIGHT_RANGE_MM[kind]
    return PieceSdf(kind, seed, float(rng.uniform(lo, hi)),
                    {"kind": kind, "seed": seed, "attempt": attempt})


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UserError(f"unknown kind '{kind}'; use one of {', '.join(KINDS)}")


def make_piece_sdf(seed: int, kind: str, mesh_voxel_mm: float = MESH_VOXEL_MM
                   ) -> tuple[trimesh.Trimesh, PieceSdf]:
    """One valid piece: its mesh (mm, piece frame) and its signed distance function.
    Draws again (``attempt`` + 1) in the rare case a draw is not one standing solid."""
    _check_kind(kind)
    why = None
    for attempt in range(_MAX_ATTEMPTS):
        sdf = _piece_sdf(int(seed), kind, attempt)
        mesh = _mesh(sdf, mesh_voxel_mm)
        why = _check(mesh)
        if why is None:
            return mesh, sdf
    raise RuntimeError(f"piece seed {seed} kind {kind}: no valid draw ({why})")


def make_piece(seed: int, kind: str = "standing", mesh_voxel_mm: float = MESH_VOXEL_MM
               ) -> tuple[trimesh.Trimesh, dict]:
    """One carving: (watertight mesh in mm in the piece frame, its parameters).

    The mesh stands on a flat base at z = 0, faces -Y, and is 250-600 mm tall.
    """
    mesh, sdf = make_piece_sdf(seed, kind, mesh_voxel_mm)
    return mesh, _describe(mesh, sdf)


def _describe(mesh: trimesh.Trimesh, sdf: PieceSdf) -> dict:
    p = dict(sdf.params)
    p["height_mm"] = float(mesh.bounds[1, 2])
    p["nominal_height_mm"] = sdf.height_mm
    p["style"] = dict(STYLE)
    return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in p.items()}


def sdf_grid(sdf: PieceSdf, mesh: trimesh.Trimesh, res: int) -> tuple[np.ndarray, float]:
    """(res, res, res) float32 signed distances (mm) on the canonical grid of the piece
    (``grid_world_from_voxel``), and the grid's extent_mm. Values beyond the truncation
    band are +-truncation (the dataset clips there anyway); near the surface the
    composed SDF is divided by its gradient norm so values read as distances."""
    extent = float(mesh.extents.max())
    height = float(mesh.bounds[1, 2])
    w = grid_world_from_voxel(height, extent, res)
    vox = w[0, 0]
    trunc = TRUNCATION_VOXELS * vox
    c = voxel_centers(w, res)
    axes = c[:, 0, 0, 0], c[0, :, 0, 1], c[0, 0, :, 2]
    lo, hi = mesh.bounds[0] - trunc - vox, mesh.bounds[1] + trunc + vox
    m = [(a >= l) & (a <= u) for a, l, u in zip(axes, lo, hi)]
    mask = m[0][:, None, None] & m[1][None, :, None] & m[2][None, None, :]
    vals = sdf.eval_grid(*axes, mask)
    # beyond the mask the distance exceeds trunc + vox: every neighbour of a point in the
    # band |d| < trunc is evaluated, so the central differences there are true ones
    vals = np.where(mask, vals, trunc + 2 * vox).astype(np.float64)
    g = np.gradient(vals, vox)
    gn = np.sqrt(g[0] ** 2 + g[1] ** 2 + g[2] ** 2)
    near = np.abs(vals) < trunc
    scale = np.where(near & (gn > 0.5) & (gn < 2.0), gn, 1.0)
    vals = fill_voids(np.clip(vals / scale, -trunc, trunc))
    return vals.astype(np.float32), extent


def piece_seed(seed: int, index: int) -> int:
    """The seed of piece ``index`` of a corpus made with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def piece_kind(seed: int, index: int, kinds: Sequence[str]) -> str:
    """The kind of piece ``index``: weighted draw over ``kinds`` (stable as n grows)."""
    w = np.array([KIND_WEIGHTS[k] for k in kinds], float)
    rng = np.random.default_rng([int(seed), int(index), 1])
    return kinds[int(rng.choice(len(kinds), p=w / w.sum()))]


def _titles(kind: str, params: dict) -> str:
    if kind == "standing":
        who = "Madonna with child" if params.get("pose") == "child" else (
            "Veiled saint" if params.get("veil") else "Standing saint")
        how = {"prayer": "praying", "crossed": "hands on breast", "book": "with book",
               "folded": "hands in sleeves", "child": ""}.get(params.get("pose"), "")
        return f"{who} {how}".strip()
    if kind == "bust":
        return "Bust, veiled" if params.get("veil") else "Bust"
    if kind == "seated":
        return ("Seated Madonna with child" if params.get("pose") == "child"
                else "Seated figure")
    return "Abstract: " + str(params.get("form", "form")).replace("_", " ")


@dataclass
class _Job:
    index: int
    seed: int
    kind: str
    res: int
    keep_mesh: bool
    tile_px: int  # 0: no gallery tiles
    views: tuple[str, ...]
    id_prefix: str


def _run_job(job: _Job) -> tuple[PreparedPiece, list[np.ndarray]]:
    mesh, sdf = make_piece_sdf(job.seed, job.kind)
    params = _describe(mesh, sdf)
    values, extent = sdf_grid(sdf, mesh, job.res)
    pid = f"{job.id_prefix}{job.index:04d}"
    tiles = []
    if job.tile_px:
        from sculptor.render import GALLERY_BACKGROUND, render_mesh

        tiles = [render_mesh(mesh, v, (job.tile_px, job.tile_px),
                             background=GALLERY_BACKGROUND) for v in job.views]
    piece = PreparedPiece(
        id=pid, values=values, height_mm=float(mesh.bounds[1, 2]), extent_mm=extent,
        bbox_mm=[float(e) for e in mesh.extents], mesh=mesh if job.keep_mesh else None,
        fields={"kind": job.kind, "title": _titles(job.kind, params), "material":
                "wood (procedural corpus)", "parameters": params})
    return piece, tiles


def _parse_kinds(kinds: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.split(",")]
    kinds = tuple(k for k in kinds if k)
    if not kinds:
        raise UserError("--kinds is empty; give a comma list of "
                        f"{', '.join(KINDS)}")
    for k in kinds:
        _check_kind(k)
    return tuple(dict.fromkeys(kinds))


def generate_corpus(n: int, seed: int, out: str | os.PathLike, res: int = 64,
                    kinds: Sequence[str] | str = KINDS, progress: bool = True,
                    meshes: bool = True, gallery: int = 48, workers: int = 0
                    ) -> DatasetManifest:
    """Write ``n`` pieces as a dataset at ``out`` (atomic: all or nothing).

    out/manifest.json, out/grids/<id>.{json,npz} (res^3 float16 SDF, mm), out/meshes/<id>.ply
    (unless ``meshes`` is False), out/gallery.png (the first ``gallery`` pieces, front and
    three-quarter views; 0 for none). ``workers`` > 1 generates in that many processes
    (same output bit for bit); 0 picks min(cores, 4) for 16 pieces or more, else 1.
    """
    if not isinstance(n, (int, np.integer)) or n <= 0:
        raise UserError(f"--n must be a positive number of pieces, got {n}")
    if not isinstance(res, (int, np.integer)) or not MIN_RES <= res <= MAX_RES:
        raise UserError(f"--res must be between {MIN_RES} and {MAX_RES}, got {res}")
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    if workers < 0:
        raise UserError(f"--workers must be >= 0 (0: automatic), got {workers}")
    if workers == 0:
        workers = min(os.cpu_count() or 1, 4) if n >= 16 else 1
    kinds = _parse_kinds(kinds)
    out = Path(out)
    views = ("front", "three_quarter")
    n_gal = min(int(gallery), n)
    tile_px = 160 if n_gal > 24 else 224
    jobs = [_Job(i, piece_seed(seed, i), piece_kind(seed, i, kinds), int(res), meshes,
                 tile_px if i < n_gal else 0, views, f"corpus-s{seed}-") for i in range(n)]
    cmd = ["sculptor", "corpus", "--n", str(n), "--seed", str(seed), "--res", str(res),
           "--kinds", ",".join(kinds)]
    if not meshes:
        cmd.append("--no-meshes")
    cmd += ["--gallery", str(gallery), "--out", str(out)]
    prov = Provenance.make("sculptor corpus", {"n": n, "seed": seed, "res": res,
                                               "kinds": list(kinds), "meshes": meshes,
                                               "gallery": gallery, "style": STYLE})
    tiles: list[tuple[int, list[np.ndarray], str]] = []

    def pieces() -> Iterator[PreparedPiece]:
        it = _results(jobs, workers)
        if progress:
            from rich.progress import track

            it = track(it, total=len(jobs), description=f"carving {n} pieces")
        for job, (piece, t) in zip(jobs, it):
            if t:
                tiles.append((job.index, t, f"{job.index}: {piece.fields['title']}"))
            yield piece

    with atomic_output_dir(out) as tmp:
        manifest = write_dataset(tmp, pieces(), res=int(res), source="corpus",
                                 provenance=prov,
                                 regenerate_command=" ".join(shlex.quote(c) for c in cmd))
        if tiles:
            _write_gallery(tmp / "gallery.png", tiles)
    return manifest


def _results(jobs: list[_Job], workers: int) -> Iterator[tuple[PreparedPiece, list]]:
    if workers == 1:
        yield from map(_run_job, jobs)
        return
    with ProcessPoolExecutor(workers) as ex:
        yield from ex.map(_run_job, jobs, chunksize=2)


def _write_gallery(path: Path, tiles: list[tuple[int, list[np.ndarray], str]]) -> None:
    """Paste the pre-rendered tiles into one contact sheet."""
    from sculptor.render import tile_sheet, write_png

    write_png(path, tile_sheet([t for _, t, _ in tiles], [s for _, _, s in tiles],
                               aspect=1.6))


def validate_piece(mesh: trimesh.Trimesh) -> str | None:
    """Public form of the checks every corpus piece passes (None = valid)."""
    return _check(mesh)


__all__ = ["generate_corpus", "make_piece", "make_piece_sdf", "default_dataset_path",
           "sdf_grid", "piece_seed", "piece_kind", "validate_piece", "footprint_mm2",
           "HEIGHT_RANGE_MM", "PieceSdf"]

