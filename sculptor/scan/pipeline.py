"""`sculptor scan register`: files in, `DIR/registration.json` + fused.ply + piece.ply out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sculptor.artifacts.core import Provenance, atomic_output_dir, warn
from sculptor.artifacts.scan import Registration, ScanPose
from sculptor.errors import UserError
from sculptor.scan.io import guess_mm_per_unit, load_geometry
from sculptor.scan.register import FINE_VOXEL_FACTOR, VOXEL_PER_EXTENT, register_points

MAX_SCANS = 24
MIN_EXTENT_MM, MAX_EXTENT_MM = 5.0, 5000.0  # a carved piece, not a coin or a house


def _units_for(extents: list[float], units: str, names: list[str]) -> tuple[float, str]:
    big, small = max(extents), min(extents)
    if big > 200 * small:
        i, j = int(np.argmax(extents)), int(np.argmin(extents))
        raise UserError(f"{names[i]} is {big / small:.0f}x larger than {names[j]}: the scans "
                        "mix metres and millimetres; convert them to one unit (or give only "
                        "scans of one piece)")
    mm_per_unit, used = guess_mm_per_unit(big, units)
    if not MIN_EXTENT_MM <= big * mm_per_unit <= MAX_EXTENT_MM:
        raise UserError(f"the scans are {big * mm_per_unit:.4g} mm across in {used}: outside "
                        f"{MIN_EXTENT_MM:g}..{MAX_EXTENT_MM:g} mm, the units are probably off "
                        "by 1000x; give --units m or --units mm")
    return mm_per_unit, used


def register_scans(paths: list[Path], out: Path, units: str = "auto",
                   progress: bool = True) -> Registration:
    """Register partial scans of one piece and rebuild it; write ``out`` atomically.

    Writes ``out/registration.json`` (poses in the input units), ``out/fused.ply`` (merged
    cloud with normals, mm) and ``out/piece.ply`` (watertight mesh, mm, world frame of
    the first placed scan).
    """
    import open3d as o3d
    from rich.progress import Progress

    from sculptor.scan.canonical import canonical_pose
    from sculptor.scan.reconstruct import fuse, watertight_piece

    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise UserError("give at least two partial scans of the piece to register")
    if len(paths) > MAX_SCANS:
        raise UserError(f"at most {MAX_SCANS} scans per piece; register in groups")
    if len({str(p) for p in paths}) != len(paths):
        raise UserError("the same scan is given twice; give each file once")
    if out.exists() and out.resolve() in {p.resolve().parent for p in paths} \
            and any(out.iterdir()):
        raise UserError(f"--out {out} holds the input scans; choose a new directory")
    geoms = [load_geometry(p) for p in paths]
    mm_per_unit, units_used = _units_for([float(np.ptp(g.points, axis=0).max()) for g in geoms],
                                         units, [g.name for g in geoms])
    scans_mm = [g.points * mm_per_unit for g in geoms]
    n_pairs = len(paths) * (len(paths) - 1) // 2
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("scan register", total=n_pairs + 4)
        res = register_points(scans_mm, progress=lambda k: bar.advance(task, k))
        placed = [k for k, w in enumerate(res.world_from_scan_mm) if w is not None]
        if len(placed) < 2 or len(placed) * 2 <= len(paths):
            raise UserError(
                f"only {len(placed)} of {len(paths)} scans fit together: the scans look like "
                "different objects (or overlap too little); give overlapping scans of ONE piece")
        for k in range(len(paths)):
            if k not in placed:
                warn(f"{paths[k]}: not placed ({res.reasons[k]}); left out of the piece")
        extent = max(float(np.ptp(p, axis=0).max()) for p in scans_mm)
        fine = extent * VOXEL_PER_EXTENT * FINE_VOXEL_FACTOR
        cloud = fuse([scans_mm[k] for k in placed],
                     [res.world_from_scan_mm[k] for k in placed], fine)
        bar.advance(task, 1)
        piece = watertight_piece(cloud)
        bar.advance(task, 1)
    if not (piece.is_watertight and piece.is_winding_consistent):
        raise UserError("could not rebuild a watertight piece from these scans; add scans "
                        "that cover the whole piece")
    upright, _ = canonical_pose(piece)
    poses = []
    for k, g in enumerate(geoms):
        w = res.world_from_scan_mm[k]
        if w is not None:
            w = w.copy()
            w[:3, 3] /= mm_per_unit
        poses.append(ScanPose(file=str(paths[k]),
                              world_from_scan=None if w is None else w.tolist(),
                              fitness=float(res.fitness[k]),
                              rmse_mm=float(res.rmse_mm[k]) if w is not None else -1.0,
                              placed=w is not None, reason=res.reasons[k]))
    prov = Provenance.make("sculptor scan register", {"units": units},
                           inputs={str(p): p for p in paths})
    reg = Registration(provenance=prov, units=units_used, scans=poses,
                       piece_watertight=True, piece_height_mm=float(upright.extents[2]))
    with atomic_output_dir(out) as tmp:
        o3d.io.write_point_cloud(str(tmp / "fused.ply"), cloud, write_ascii=False)
        piece.export(tmp / "piece.ply")
        reg.save(tmp / "registration.json")
    return reg
