"""Scan ingestion: register partial scans, rebuild a watertight piece, build SDF datasets.

Public API (other stages call these):

- `register_scans(paths, out, units="auto", progress=True) -> Registration`
- `prepare_dataset(inputs, out, res=64, meta=None) -> DatasetManifest`
- `mesh_sdf_grid(mesh, world_from_voxel, res, truncation_mm) -> (res, res, res) float32`
- `virtual_scan(mesh, n_views=6, seed=0, noise_mm=0.2, return_poses=False) -> list of (n, 3)
  arrays` (with `return_poses`: `(scans, scan_from_mesh (4, 4) each)`)
- `canonical_pose(mesh) -> (mesh_upright, piece_from_input (4, 4))`

Heavy modules are imported when used, so `import sculptor.scan` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from sculptor.scan.canonical import canonical_pose
    from sculptor.scan.pipeline import register_scans
    from sculptor.scan.prepare import prepare_dataset
    from sculptor.scan.sdf import mesh_sdf_grid
    from sculptor.scan.virtual import virtual_scan

_WHERE = {
    "register_scans": "sculptor.scan.pipeline",
    "prepare_dataset": "sculptor.scan.prepare",
    "mesh_sdf_grid": "sculptor.scan.sdf",
    "virtual_scan": "sculptor.scan.virtual",
    "canonical_pose": "sculptor.scan.canonical",
}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'sculptor.scan' has no attribute {name!r}")
