"""Stage artifacts: pydantic headers (schema_version + provenance) with npz/mesh payloads."""

from sculptor.artifacts.core import (
    Artifact,
    Provenance,
    atomic_output_dir,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_mesh,
    atomic_write_npz,
    atomic_write_text,
    sha256_file,
)
from sculptor.artifacts.design import Design
from sculptor.artifacts.journal import Journal, JournalEvent, JournalHeader
from sculptor.artifacts.program import RobotProgram
from sculptor.artifacts.scan import Registration, ScanPose
from sculptor.artifacts.sdf import DatasetManifest, PieceEntry, SdfGrid
from sculptor.artifacts.sim_report import SimReport
from sculptor.artifacts.toolpath import MoveKind, Pass, StockSpec, Toolpath

__all__ = [
    "Artifact", "Provenance", "atomic_output_dir", "atomic_write_bytes", "atomic_write_json",
    "atomic_write_mesh", "atomic_write_npz", "atomic_write_text", "sha256_file", "Design",
    "Journal", "JournalEvent", "JournalHeader", "RobotProgram", "Registration", "ScanPose",
    "DatasetManifest", "PieceEntry", "SdfGrid", "SimReport", "MoveKind", "Pass", "StockSpec",
    "Toolpath",
]
