"""Reading scans and meshes at the boundary: every user mistake becomes one `UserError`.

Loads PLY (ascii/binary, faces as lists or as triangle strips, Stanford range grids),
OBJ, STL and OFF through trimesh, checks the numbers (finite, enough points, faces that
index real vertices) and guesses units. Inner code trusts what this module returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sculptor.errors import UserError

SUFFIXES = (".ply", ".obj", ".stl", ".off")
MIN_POINTS = 100
# a piece whose largest extent is below this many input units is taken to be in metres
METRE_GUESS_MAX_EXTENT = 5.0


@dataclass
class Geometry:
    """One loaded file.

    points : (n, 3) float64 vertex coordinates, in the file's units
    faces : (m, 3) int64 triangles or None (a point cloud)
    """

    path: Path
    points: np.ndarray
    faces: np.ndarray | None

    @property
    def name(self) -> str:
        return str(self.path)


def strips_to_triangles(strip: np.ndarray) -> np.ndarray:
    """Triangles (m, 3) from one or more triangle strips joined by -1 restarts.

    Every other triangle in a strip is flipped so the winding stays consistent;
    degenerate triangles (repeated indices, used to join strips) are dropped.
    """
    strip = np.asarray(strip, dtype=np.int64).ravel()
    tris = []
    cuts = np.flatnonzero(strip < 0)
    start = 0
    for end in list(cuts) + [len(strip)]:
        s = strip[start:end]
        start = end + 1
        if len(s) < 3:
            continue
        a, b, c = s[:-2], s[1:-1], s[2:]
        t = np.stack([a, b, c], axis=1)
        odd = np.arange(len(t)) % 2 == 1
        t[odd] = t[odd][:, [1, 0, 2]]
        tris.append(t)
    if not tris:
        return np.zeros((0, 3), np.int64)
    t = np.concatenate(tris)
    ok = (t[:, 0] != t[:, 1]) & (t[:, 1] != t[:, 2]) & (t[:, 0] != t[:, 2])
    return t[ok]


def _read_ply_strips(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(vertices, faces) of a PLY that stores faces as `tristrips`, or None if it has none."""
    from trimesh.exchange import ply

    with open(path, "rb") as f:
        elements, is_ascii, _ = ply._parse_header(f)
        if "tristrips" not in elements:
            return None
        (ply._ply_ascii if is_ascii else ply._ply_binary)(elements, f)
    v = elements["vertex"]["data"]
    pts = np.stack([np.asarray(v[k], np.float64) for k in ("x", "y", "z")], axis=1)
    data = elements["tristrips"]["data"]["vertex_indices"]
    strips = []
    for row in data:
        lst = row[1] if isinstance(row, (tuple, np.void)) and len(row) == 2 else row
        strips.append(np.asarray(lst, np.int64).ravel())
    faces = strips_to_triangles(np.concatenate([np.append(s, -1) for s in strips]))
    return pts, faces


def _header_has_strips(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4096)
    return head.startswith(b"ply") and b"element tristrips" in head


def load_geometry(path: str | Path, *, need_faces: bool = False) -> Geometry:
    """Load a mesh or point cloud; raise `UserError` with the fix for anything wrong."""
    import trimesh

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if path.is_dir():
        raise UserError(f"{path} is a directory; give mesh or scan files")
    if path.suffix.lower() not in SUFFIXES:
        raise UserError(f"{path}: unsupported file type '{path.suffix}'; "
                        f"give {', '.join(SUFFIXES)} files")
    if path.stat().st_size == 0:
        raise UserError(f"{path} is empty (0 bytes); re-export the scan")
    faces = None
    try:
        if path.suffix.lower() == ".ply" and _header_has_strips(path):
            pts, faces = _read_ply_strips(path)  # type: ignore[misc]
        else:
            obj = trimesh.load(path, force=None, process=False)
            if isinstance(obj, trimesh.Scene):
                geoms = [g for g in obj.geometry.values() if hasattr(g, "vertices")]
                if not geoms:
                    raise ValueError("no geometry")
                obj = trimesh.util.concatenate(
                    [g for g in geoms if isinstance(g, trimesh.Trimesh)] or geoms[:1])
            pts = np.asarray(obj.vertices, np.float64)
            if isinstance(obj, trimesh.Trimesh) and len(obj.faces):
                faces = np.asarray(obj.faces, np.int64)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - any parser failure is a bad file
        raise UserError(f"{path} is not a readable mesh or point cloud "
                        f"({e.__class__.__name__}: {str(e)[:80]}); check the file is complete")
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        raise UserError(f"{path} holds no points; is it truncated?")
    bad = ~np.isfinite(pts).all(axis=1)
    if bad.any():
        raise UserError(f"{path}: {int(bad.sum())} of {len(pts)} points have NaN/inf "
                        "coordinates; clean the scan (remove invalid points) and retry")
    if faces is not None:
        if faces.size == 0:
            faces = None
        elif faces.min() < 0 or faces.max() >= len(pts):
            raise UserError(f"{path}: faces index vertices that do not exist; "
                            "the file is corrupt or truncated")
    if need_faces and faces is None:
        raise UserError(f"{path} has no faces (a point cloud); give a reconstructed mesh, "
                        "or register scans with 'sculptor scan register' first")
    if len(np.unique(pts.round(9), axis=0)) < MIN_POINTS:
        raise UserError(f"{path} has fewer than {MIN_POINTS} distinct points; "
                        "it is too small to be a scan of a piece")
    return Geometry(path=path, points=pts, faces=faces)


def guess_mm_per_unit(extent: float, units: str) -> tuple[float, str]:
    """mm per input unit and the unit name from ``units`` (auto|m|mm) and the largest extent.

    ``auto`` takes files whose largest extent is below 5 units as metres, else mm.
    """
    if units not in ("auto", "m", "mm"):
        raise UserError(f"--units must be auto, m or mm, not '{units}'")
    if units == "auto":
        units = "m" if extent < METRE_GUESS_MAX_EXTENT else "mm"
    return (1000.0 if units == "m" else 1.0), units


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files given directly, plus every mesh file (sorted) inside given directories."""
    files: list[Path] = []
    for p in inputs:
        p = Path(p)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in SUFFIXES)
            if not found:
                raise UserError(f"{p}: no {', '.join(SUFFIXES)} files in this directory")
            files += found
        else:
            files.append(p)
    if not files:
        raise UserError("no input files given")
    return files
