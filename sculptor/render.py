"""Offline shaded-mesh rendering for every stage's PNGs (no display, no GPU, no EGL).

A small vectorised numpy z-buffer rasteriser with orthographic cameras and one fixed
lighting rig (a key light from the upper left, a weak fill from the right, ambient), so
every picture the project makes is lit the same way.

Views (piece frame: mm, +Z up, base at z = 0):

- ``front``: looking along +Y (the viewer stands at -Y); screen right = +X, up = +Z.
- ``three_quarter``: the front view turned 40 deg about Z and seen from 12 deg above.
- ``side``: looking along -X (the viewer stands at +X); screen right = +Y, up = +Z.
- ``top``: looking down -Z; screen right = +X, up = +Y.

The framing (scale and centre) depends only on the mesh bounds, the view and the image
size, so :func:`project_points` puts points (toolpaths, markers) exactly where
:func:`render_mesh` drew the surface under them.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sculptor.artifacts.core import atomic_write_bytes

VIEWS = ("front", "three_quarter", "side", "top")
WOOD_RGB = (0.80, 0.64, 0.45)
_MARGIN = 0.06
# lighting in view coordinates (x right, y up, z toward the viewer)
_KEY = np.array([-0.45, 0.55, 0.70])
_KEY /= np.linalg.norm(_KEY)
_FILL = np.array([0.70, 0.10, 0.70])
_FILL /= np.linalg.norm(_FILL)
_AMBIENT, _KEY_W, _FILL_W = 0.22, 0.72, 0.18
_MAX_CANDIDATES = 1 << 21


def view_rotation(view: str) -> np.ndarray:
    """(3, 3) view_from_piece rotation: rows are screen right, screen up, toward viewer."""
    if view == "front":
        return np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])
    if view == "side":
        return np.array([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]])
    if view == "top":
        return np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]])
    if view == "three_quarter":
        az, el = math.radians(40.0), math.radians(12.0)
        rz = np.array([[math.cos(az), math.sin(az), 0], [-math.sin(az), math.cos(az), 0],
                       [0, 0, 1]])
        rx = np.array([[1, 0, 0], [0, math.cos(el), -math.sin(el)],
                       [0, math.sin(el), math.cos(el)]])
        return rx @ view_rotation("front") @ rz
    raise ValueError(f"unknown view {view!r}; use one of {', '.join(VIEWS)}")


@dataclass(frozen=True)
class Framing:
    """An orthographic camera fitted to a bounding box."""

    view_from_piece: np.ndarray  # (3, 3)
    scale_px_per_mm: float
    center: np.ndarray  # (2,) view-plane mm at the image centre
    size: tuple[int, int]  # (w, h) pixels

    @classmethod
    def fit(cls, view: str, mesh_bounds: Any, size: tuple[int, int]) -> "Framing":
        """Fit ``mesh_bounds`` ((2, 3) min/max corners, mm) into ``size`` with a margin."""
        b = np.asarray(mesh_bounds, float).reshape(2, 3)
        r = view_rotation(view)
        corners = np.array([[b[i, 0], b[j, 1], b[k, 2]]
                            for i in (0, 1) for j in (0, 1) for k in (0, 1)])
        c = corners @ r.T
        lo, hi = c[:, :2].min(0), c[:, :2].max(0)
        w, h = int(size[0]), int(size[1])
        ext = np.maximum(hi - lo, 1e-9)
        scale = float(min(w * (1 - 2 * _MARGIN) / ext[0], h * (1 - 2 * _MARGIN) / ext[1]))
        return cls(r, scale, (lo + hi) / 2, (w, h))

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """points (n, 3) mm -> (pixel xy (n, 2) float, depth (n,) mm, larger = nearer)."""
        c = np.asarray(points, float) @ self.view_from_piece.T
        w, h = self.size
        px = (c[:, 0] - self.center[0]) * self.scale_px_per_mm + w / 2
        py = h / 2 - (c[:, 1] - self.center[1]) * self.scale_px_per_mm
        return np.stack([px, py], axis=1), c[:, 2]


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or min(int(size[0]), int(size[1])) < 8 or max(size) > 8192:
        raise ValueError(f"size must be (w, h) with 8 <= w, h <= 8192, got {size}")
    return int(size[0]), int(size[1])


def project_points(points: np.ndarray, view: str, mesh_bounds: Any,
                   size: tuple[int, int]) -> np.ndarray:
    """Pixel coordinates of piece-frame points in a render of a mesh with ``mesh_bounds``.

    points : (n, 3) float, mm.  mesh_bounds : (2, 3) min/max corners of the rendered mesh
    (``mesh.bounds``).  size : (w, h) of the render.  Returns (n, 2) float pixel (x, y),
    x to the right and y down from the top-left corner (pixel centres at +0.5).
    """
    points = np.asarray(points, float)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError("points must be (n, 3)")
    return Framing.fit(view, mesh_bounds, _check_size(size)).project(points)[0]


def _rasterize(p2: np.ndarray, depth: np.ndarray, faces: np.ndarray, w: int, h: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffer: for each covered pixel the nearest face and its barycentric coordinates.

    p2 (nv, 2) pixel xy, depth (nv,), faces (nf, 3).  Returns (pix (m,) flat pixel index,
    face (m,), bary (m, 3)), one row per covered pixel.
    """
    tri = p2[faces]  # (nf, 3, 2)
    x0 = np.clip(np.ceil(tri[..., 0].min(1) - 0.5), 0, w).astype(np.int64)
    x1 = np.clip(np.floor(tri[..., 0].max(1) - 0.5), -1, w - 1).astype(np.int64)
    y0 = np.clip(np.ceil(tri[..., 1].min(1) - 0.5), 0, h).astype(np.int64)
    y1 = np.clip(np.floor(tri[..., 1].max(1) - 0.5), -1, h - 1).astype(np.int64)
    bw, bh = x1 - x0 + 1, y1 - y0 + 1
    a = tri[:, 0]
    e1, e2 = tri[:, 1] - a, tri[:, 2] - a
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    ok = (bw > 0) & (bh > 0) & (np.abs(area) > 1e-12)
    # bucket by the power-of-two bbox size so each bucket is one dense broadcast
    kx = np.where(ok, np.ceil(np.log2(np.maximum(bw, 1))), -1).astype(np.int64)
    ky = np.where(ok, np.ceil(np.log2(np.maximum(bh, 1))), -1).astype(np.int64)
    pix_l, face_l, z_l, b_l = [], [], [], []
    key = kx * 64 + ky
    order = np.argsort(key, kind="stable")
    ks, starts = np.unique(key[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    fz = depth[faces]  # (nf, 3)
    for k, s, e in zip(ks, starts, ends):
        if k < 0:
            continue
        sx, sy = 1 << int(k // 64), 1 << int(k % 64)
        ox, oy = np.meshgrid(np.arange(sx), np.arange(sy), indexing="xy")
        ox, oy = ox.ravel(), oy.ravel()
        sel_all = order[s:e]
        step = max(1, _MAX_CANDIDATES // (sx * sy))
        for c in range(0, len(sel_all), step):
            f = sel_all[c:c + step]
            px = x0[f, None] + ox[None]
            py = y0[f, None] + oy[None]
            inb = (px <= x1[f, None]) & (py <= y1[f, None])
            qx = px + 0.5 - a[f, 0, None]
            qy = py + 0.5 - a[f, 1, None]
            ar = area[f, None]
            b1 = (qx * e2[f, 1, None] - qy * e2[f, 0, None]) / ar
            b2 = (e1[f, 0, None] * qy - e1[f, 1, None] * qx) / ar
            b0 = 1.0 - b1 - b2
            eps = -1e-9
            inside = inb & (b0 >= eps) & (b1 >= eps) & (b2 >= eps)
            if not inside.any():
                continue
            ri, ci = np.nonzero(inside)
            bb = np.stack([b0[ri, ci], b1[ri, ci], b2[ri, ci]], axis=1)
            fi = f[ri]
            pix_l.append(py[ri, ci] * w + px[ri, ci])
            face_l.append(fi)
            z_l.append((bb * fz[fi]).sum(1))
            b_l.append(bb)
    if not pix_l:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3))
    pix = np.concatenate(pix_l)
    face = np.concatenate(face_l)
    z = np.concatenate(z_l)
    bary = np.concatenate(b_l)
    o = np.lexsort((-z, pix))  # per pixel, nearest (largest z) first
    pix_s = pix[o]
    first = np.ones(len(o), bool)
    first[1:] = pix_s[1:] != pix_s[:-1]
    win = o[first]
    return pix[win], face[win], bary[win]


def _mesh_arrays(mesh: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(mesh, (tuple, list)) and len(mesh) == 2:
        v, f = mesh
    else:
        v, f = getattr(mesh, "vertices", None), getattr(mesh, "faces", None)
    if v is None or f is None:
        raise ValueError("mesh must be a trimesh.Trimesh or a (vertices, faces) pair")
    v = np.asarray(v, float)
    f = np.asarray(f, np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError("mesh vertices must be (n, 3) and faces (m, 3)")
    return v, f


def _vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """(nv, 3) area-weighted vertex normals (unit; zero where undefined)."""
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = np.zeros_like(v)
    for i in range(3):
        vn += np.stack([np.bincount(f[:, i], fn[:, d], minlength=len(v)) for d in range(3)],
                       axis=1)
    n = np.linalg.norm(vn, axis=1, keepdims=True)
    return np.divide(vn, n, out=np.zeros_like(vn), where=n > 0)


def render_mesh(mesh: Any, view: str = "front", size: tuple[int, int] = (512, 512),
                vertex_colors: np.ndarray | None = None,
                background: tuple[float, float, float] = (1.0, 1.0, 1.0),
                bounds: Any | None = None) -> np.ndarray:
    """Shaded orthographic picture of a mesh.

    mesh : trimesh.Trimesh (or (vertices (n, 3), faces (m, 3))), mm, piece frame.
    view : one of ``VIEWS``.  size : (w, h) pixels.
    vertex_colors : optional (n, 3) or (n, 4) per-vertex colour, floats in [0, 1] or uint8;
        default is a light wood tone.
    background : RGB in [0, 1].
    bounds : (2, 3) box to frame instead of the mesh bounds (to frame several meshes alike).
    Returns (h, w, 3) uint8.
    """
    w, h = _check_size(size)
    v, f = _mesh_arrays(mesh)
    bg = np.clip(np.asarray(background, float).reshape(3), 0, 1)
    img = np.empty((h * w, 3))
    img[:] = bg
    if len(v) == 0 or len(f) == 0:
        return (img.reshape(h, w, 3) * 255 + 0.5).astype(np.uint8)
    b = np.stack([v.min(0), v.max(0)]) if bounds is None else np.asarray(bounds, float)
    fr = Framing.fit(view, b, (w, h))
    p2, z = fr.project(v)
    pix, face, bary = _rasterize(p2, z, f, w, h)
    if len(pix):
        vn = _vertex_normals(v, f) @ fr.view_from_piece.T
        n = (bary[:, :, None] * vn[f[face]]).sum(1)
        nn = np.linalg.norm(n, axis=1, keepdims=True)
        # faces seen from behind (open meshes) or degenerate normals: use the face normal
        tv = v[f[face]] @ fr.view_from_piece.T
        fnv = np.cross(tv[:, 1] - tv[:, 0], tv[:, 2] - tv[:, 0])
        fnv /= np.maximum(np.linalg.norm(fnv, axis=1, keepdims=True), 1e-12)
        n = np.where(nn > 1e-9, n / np.maximum(nn, 1e-12), fnv)
        n = np.where((n[:, 2:3] < 0) & (fnv[:, 2:3] < 0), -n, n)
        shade = (_AMBIENT + _KEY_W * np.clip(n @ _KEY, 0, None)
                 + _FILL_W * np.clip(n @ _FILL, 0, None))
        if vertex_colors is None:
            col = np.broadcast_to(np.asarray(WOOD_RGB), (len(pix), 3))
        else:
            vc = np.asarray(vertex_colors)
            if vc.ndim != 2 or vc.shape[0] != len(v) or vc.shape[1] not in (3, 4):
                raise ValueError("vertex_colors must be (n_vertices, 3) or (n_vertices, 4)")
            vc = vc[:, :3].astype(float)
            if np.asarray(vertex_colors).dtype == np.uint8 or vc.max() > 1.0:
                vc = vc / 255.0
            col = (bary[:, :, None] * vc[f[face]]).sum(1)
        img[pix] = np.clip(col * shade[:, None], 0, 1)
    return (img.reshape(h, w, 3) * 255 + 0.5).astype(np.uint8)


def depth_map(mesh: Any, view: str = "front", size: tuple[int, int] = (512, 512),
              bounds: Any | None = None) -> np.ndarray:
    """(h, w) float64 depth of the nearest surface per pixel in the framing of
    :func:`render_mesh` (mm along the view axis, larger = nearer the viewer; -inf where
    the pixel shows background)."""
    w, h = _check_size(size)
    v, f = _mesh_arrays(mesh)
    out = np.full(h * w, -np.inf)
    if len(v) and len(f):
        b = np.stack([v.min(0), v.max(0)]) if bounds is None else np.asarray(bounds, float)
        fr = Framing.fit(view, b, (w, h))
        p2, z = fr.project(v)
        pix, face, bary = _rasterize(p2, z, f, w, h)
        out[pix] = (bary * z[f[face]]).sum(1)
    return out.reshape(h, w)


def points_visible(points: np.ndarray, mesh: Any, view: str, size: tuple[int, int],
                   tol_mm: float = 1.0, bounds: Any | None = None) -> np.ndarray:
    """(n,) bool: which piece-frame points (n, 3) mm are not hidden behind the mesh in a
    render of it (within ``tol_mm`` of the visible surface or in front of it), e.g. to
    draw only the visible part of a toolpath over :func:`render_mesh`."""
    points = np.asarray(points, float)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError("points must be (n, 3)")
    w, h = _check_size(size)
    v, _ = _mesh_arrays(mesh)
    b = np.stack([v.min(0), v.max(0)]) if bounds is None else np.asarray(bounds, float)
    zbuf = depth_map(mesh, view, (w, h), b)
    xy, z = Framing.fit(view, b, (w, h)).project(points)
    ix = np.clip(np.floor(xy[:, 0]).astype(int), 0, w - 1)
    iy = np.clip(np.floor(xy[:, 1]).astype(int), 0, h - 1)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    # the nearest surface around the pixel (the point may sit on a silhouette edge)
    near = zbuf[iy, ix]
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        near = np.minimum(near, np.where(np.isfinite(zbuf[np.clip(iy + dy, 0, h - 1),
                                                          np.clip(ix + dx, 0, w - 1)]),
                                         zbuf[np.clip(iy + dy, 0, h - 1),
                                              np.clip(ix + dx, 0, w - 1)], np.inf))
    return ~inside | (z >= near - tol_mm)


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an (h, w, 3) uint8 image as PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an (h, w, 3) uint8 image to ``path`` atomically."""
    return atomic_write_bytes(path, png_bytes(rgb))


def tile_sheet(tiles: Sequence[Sequence[np.ndarray]], titles: Sequence[str] | None = None,
               columns: int | None = None, aspect: float = 1.4) -> np.ndarray:
    """Lay out pictures of pieces as a contact sheet.

    tiles : per piece, a list of equally sized (px, px, 3) uint8 views (side by side).
    titles : one caption per piece.  columns : pieces per row (default: the sheet is about
    ``aspect`` times as wide as tall).  Returns (H, W, 3) uint8.
    """
    from PIL import Image, ImageDraw

    if not tiles:
        raise ValueError("tile_sheet needs at least one piece")
    if titles is not None and len(titles) != len(tiles):
        raise ValueError("titles must have one entry per piece")
    nv = len(tiles[0])
    px = tiles[0][0].shape[0]
    cols = columns or max(1, int(math.ceil(math.sqrt(len(tiles) / nv * aspect))))
    rows = int(math.ceil(len(tiles) / cols))
    cap = 16 if titles is not None else 0
    cw, ch = px * nv + 6, px + cap
    sheet = Image.new("RGB", (cols * cw, rows * ch), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, views in enumerate(tiles):
        r, c = divmod(i, cols)
        for j, im in enumerate(views):
            sheet.paste(Image.fromarray(np.asarray(im, np.uint8)), (c * cw + j * px, r * ch))
        if titles is not None:
            draw.text((c * cw + 3, r * ch + px + 2), str(titles[i])[: nv * px // 6],
                      fill=(40, 40, 40))
    return np.asarray(sheet)


GALLERY_BACKGROUND = (0.96, 0.96, 0.95)


def render_gallery(meshes: list, out_png: str | os.PathLike,
                   views: Sequence[str] = ("front", "three_quarter"),
                   titles: Sequence[str] | None = None, cell_px: int = 256,
                   columns: int | None = None, progress: bool = False) -> Path:
    """A contact sheet: each piece as ``len(views)`` cells side by side, pieces in a grid.

    meshes : list of meshes (see :func:`render_mesh`).  titles : one caption per piece.
    columns : pieces per row (default: about square).  Written atomically; returns the path.
    """
    if not meshes:
        raise ValueError("render_gallery needs at least one mesh")
    if titles is not None and len(titles) != len(meshes):
        raise ValueError("titles must have one entry per mesh")
    for vw in views:
        view_rotation(vw)
    it: Any = meshes
    if progress:
        from rich.progress import track

        it = track(meshes, description="rendering gallery")
    tiles = [[render_mesh(m, vw, (cell_px, cell_px), background=GALLERY_BACKGROUND)
              for vw in views] for m in it]
    return write_png(out_png, tile_sheet(tiles, titles, columns))
