"""The SDF dataset on disk: ``DATASET/manifest.json`` + ``grids/<id>.npz`` + ``meshes/<id>.ply``.

Written the same way by `sculptor scan prepare` and `sculptor corpus`, read by
`sculptor train` / `sculptor eval`. The grid convention is in `sculptor.artifacts.sdf`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal

import numpy as np

from sculptor.artifacts.core import Provenance, atomic_output_dir, atomic_write_mesh
from sculptor.artifacts.sdf import (
    TRUNCATION_VOXELS,
    DatasetManifest,
    PieceEntry,
    SdfGrid,
    grid_world_from_voxel,
)
from sculptor.errors import UserError

HELD_OUT_FRACTION = 0.15


def split_of(piece_id: str, held_out_fraction: float = HELD_OUT_FRACTION) -> str:
    """Deterministic train / held-out split from a hash of the piece id (stable when the
    dataset grows: adding pieces never moves old ones between splits)."""
    h = int.from_bytes(hashlib.sha256(piece_id.encode()).digest()[:8], "big") / 2**64
    return "held_out" if h < held_out_fraction else "train"


@dataclass
class PreparedPiece:
    """One piece ready to write: its entry fields, SDF values and canonical mesh."""

    id: str
    values: np.ndarray  # (res, res, res) signed distance, mm, negative inside
    height_mm: float
    extent_mm: float  # largest extent (sets the grid side)
    bbox_mm: list[float]
    mesh: Any | None = None  # trimesh.Trimesh in the piece frame (mm)
    split: str | None = None
    fields: dict | None = None  # title, year, material, exhibited, kind, parameters, sources


def make_grid(piece_id: str, values: np.ndarray, height_mm: float, extent_mm: float,
              provenance: Provenance) -> SdfGrid:
    res = values.shape[0]
    w = grid_world_from_voxel(height_mm, extent_mm, res)
    trunc = TRUNCATION_VOXELS * w[0, 0]
    return SdfGrid(provenance=provenance, piece_id=piece_id, res=res, height_mm=height_mm,
                   world_from_voxel=w.tolist(), truncation_mm=trunc,
                   values=np.clip(values, -trunc, trunc).astype(np.float16))


def write_dataset(out: str | os.PathLike, pieces: Iterable[PreparedPiece], *, res: int,
                  source: Literal["scan", "corpus"], provenance: Provenance,
                  regenerate_command: str | None = None) -> DatasetManifest:
    """Write a complete dataset atomically (built in a temp dir, renamed into place)."""
    entries: list[PieceEntry] = []
    with atomic_output_dir(out) as tmp:
        for p in pieces:
            if p.values.shape != (res, res, res):
                raise ValueError(f"piece {p.id}: grid shape {p.values.shape} != res {res}")
            grid = make_grid(p.id, p.values, p.height_mm, p.extent_mm, provenance)
            grid.save(tmp / "grids" / f"{p.id}.json")
            mesh_rel = None
            if p.mesh is not None:
                mesh_rel = f"meshes/{p.id}.ply"
                atomic_write_mesh(tmp / mesh_rel, p.mesh)
            entries.append(PieceEntry(id=p.id, grid=f"grids/{p.id}.json", mesh=mesh_rel,
                                      split=p.split or split_of(p.id), height_mm=p.height_mm,
                                      bbox_mm=list(map(float, p.bbox_mm)), **(p.fields or {})))
        if not entries:
            raise UserError("no pieces to write: the dataset would be empty")
        if len({e.id for e in entries}) != len(entries):
            raise UserError("two pieces share one id; give them distinct file names")
        manifest = DatasetManifest(provenance=provenance, res=res, source=source,
                                   regenerate_command=regenerate_command, pieces=entries)
        manifest.save(tmp / "manifest.json")
    return manifest


def load_manifest(path: str | os.PathLike) -> tuple[DatasetManifest, Path]:
    """Read ``DATASET/manifest.json`` (``path`` is the dataset dir or the manifest)."""
    path = Path(path)
    mpath = path / "manifest.json" if path.is_dir() else path
    if not mpath.is_file():
        raise UserError(f"no dataset at {path}: manifest.json not found "
                        "(make one with 'sculptor scan prepare' or 'sculptor corpus')")
    manifest = DatasetManifest.load(mpath)
    if not manifest.pieces:
        raise UserError(f"dataset {path} has no pieces")
    return manifest, mpath.parent


def load_grids(path: str | os.PathLike, split: str | None = None
               ) -> tuple[DatasetManifest, list[PieceEntry], np.ndarray]:
    """All grids of a dataset (or of one split) as one (n, res, res, res) float32 array,
    normalised to [-1, 1] by each grid's truncation distance."""
    manifest, root = load_manifest(path)
    entries = [p for p in manifest.pieces if split is None or p.split == split]
    if not entries:
        raise UserError(f"dataset {path} has no pieces in split '{split}'")
    out = np.empty((len(entries),) + (manifest.res,) * 3, np.float32)
    for i, e in enumerate(entries):
        g = SdfGrid.load(root / e.grid)
        if g.res != manifest.res:
            raise UserError(f"{e.grid}: res {g.res} but the manifest says {manifest.res}")
        out[i] = g.values.astype(np.float32) / g.truncation_mm
    return manifest, entries, out
