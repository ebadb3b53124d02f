"""`sculptor scan prepare`: reconstructed meshes -> upright pieces in mm -> SDF dataset."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from sculptor.artifacts.core import Provenance, sha256_file, warn
from sculptor.artifacts.sdf import TRUNCATION_VOXELS, DatasetManifest, grid_world_from_voxel
from sculptor.dataset import PreparedPiece, write_dataset
from sculptor.errors import UserError
from sculptor.scan.canonical import canonical_pose_method, clean_mesh
from sculptor.scan.io import expand_inputs, guess_mm_per_unit, load_geometry
from sculptor.scan.sdf import mesh_sdf_grid

META_COLUMNS = ("title", "year", "material", "exhibited", "kind", "units", "height_mm")
MIN_HEIGHT_MM, MAX_HEIGHT_MM = 5.0, 5000.0
MIN_RES, MAX_RES = 8, 256


def piece_id(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem).strip("._") or "piece"


def read_meta(path: Path | None) -> dict[str, dict]:
    """meta CSV -> {file name or stem: row}; a ``file`` (or ``id``) column is required."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--meta {path}: file not found")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"--meta {path} is not a readable CSV file ({e})")
    if not rows:
        raise UserError(f"--meta {path} has no rows")
    key = "file" if "file" in rows[0] else "id" if "id" in rows[0] else None
    if key is None:
        raise UserError(f"--meta {path} needs a 'file' column naming each mesh")
    out = {}
    for n, row in enumerate(rows, start=2):
        entry = {k: (v.strip() if isinstance(v, str) else v) for k, v in row.items()
                 if k in META_COLUMNS and v not in (None, "")}
        for num, typ in (("year", int), ("height_mm", float)):
            if num in entry:
                try:
                    entry[num] = typ(entry[num])
                except ValueError:
                    raise UserError(f"--meta {path} line {n}: {num} '{entry[num]}' "
                                    "is not a number")
        if "units" in entry and entry["units"] not in ("m", "mm"):
            raise UserError(f"--meta {path} line {n}: units must be m or mm")
        name = Path(row[key].strip()).name
        out[name] = entry
        out[Path(name).stem] = entry
    return out


def prepare_mesh(mesh, res: int, units: str = "auto", height_mm: float | None = None,
                 name: str = "mesh") -> tuple[PreparedPiece, dict]:
    """Clean, scale to mm, pose upright and grid one mesh (trimesh.Trimesh).

    Returns the piece (id unset) and facts about it (method, mm_per_unit).
    """
    mesh = clean_mesh(mesh)
    if len(mesh.faces) < 4:
        raise UserError(f"{name}: fewer than 4 usable faces after cleaning")
    mm_per_unit, units_used = guess_mm_per_unit(float(mesh.extents.max()), units)
    mesh.apply_scale(mm_per_unit)
    upright, _, method = canonical_pose_method(mesh)
    if height_mm is not None:
        upright.apply_scale(height_mm / float(upright.extents[2]))
    height = float(upright.extents[2])
    if not MIN_HEIGHT_MM <= height <= MAX_HEIGHT_MM:
        raise UserError(f"{name}: height {height:.4g} mm in {units_used} is implausible "
                        f"(outside {MIN_HEIGHT_MM:g}..{MAX_HEIGHT_MM:g} mm); the units are "
                        "probably off by 1000x: set 'units' (m|mm) or 'height_mm' in --meta")
    extent = float(upright.extents.max())
    w = grid_world_from_voxel(height, extent, res)
    values = mesh_sdf_grid(upright, w, res, TRUNCATION_VOXELS * w[0, 0])
    piece = PreparedPiece(id="", values=values, height_mm=height, extent_mm=extent,
                          bbox_mm=[float(x) for x in upright.extents], mesh=upright)
    return piece, {"pose_method": method, "units": units_used}


def prepare_dataset(inputs: list[Path], out: Path, res: int = 64, meta: Path | None = None,
                    progress: bool = True) -> DatasetManifest:
    """Build an SDF dataset from reconstructed meshes (files or directories of files).

    Writes ``out/manifest.json``, ``out/grids/<id>.json|.npz``, ``out/meshes/<id>.ply``
    through `sculptor.dataset.write_dataset` (atomically: nothing is left on failure).
    """
    import trimesh

    if not MIN_RES <= res <= MAX_RES:
        raise UserError(f"--res must be between {MIN_RES} and {MAX_RES}, not {res}")
    files = expand_inputs([Path(p) for p in inputs])
    rows = read_meta(meta)
    ids = [piece_id(f) for f in files]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise UserError(f"two inputs share the name {sorted(dup)[0]!r}; rename one")
    geoms = [load_geometry(f, need_faces=True) for f in files]  # all checked before work

    def pieces() -> Iterator[PreparedPiece]:
        from rich.progress import Progress

        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("scan prepare", total=len(geoms))
            for g, pid in zip(geoms, ids):
                row = rows.get(g.path.name) or rows.get(g.path.stem) or {}
                mesh = trimesh.Trimesh(g.points, g.faces, process=False)
                piece, facts = prepare_mesh(mesh, res, row.get("units", "auto"),
                                            row.get("height_mm"), name=str(g.path))
                if facts["pose_method"] == "principal_axes":
                    warn(f"{g.path}: no flat base found; posed by principal axes")
                piece.id = pid
                piece.fields = {k: row[k] for k in ("title", "year", "material", "exhibited",
                                                    "kind") if k in row}
                piece.fields.update(source_files=[str(g.path)],
                                    source_sha256=[sha256_file(g.path)],
                                    pose_method=facts["pose_method"], units=facts["units"])
                bar.advance(task)
                yield piece

    prov = Provenance.make("sculptor scan prepare", {"res": res, "meta": meta},
                           inputs={str(f): f for f in files})
    return write_dataset(out, pieces(), res=res, source="scan", provenance=prov,
                         regenerate_command="sculptor scan prepare "
                         + " ".join(str(p) for p in inputs) + f" --out {out} --res {res}"
                         + (f" --meta {meta}" if meta else ""))
