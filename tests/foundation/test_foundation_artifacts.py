"""Round trips of every stage artifact and the atomic-write guarantees."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import trimesh

from sculptor.artifacts import (
    Design,
    Journal,
    JournalHeader,
    MoveKind,
    Pass,
    Provenance,
    Registration,
    RobotProgram,
    ScanPose,
    SdfGrid,
    SimReport,
    StockSpec,
    Toolpath,
    atomic_output_dir,
    atomic_write_mesh,
    atomic_write_text,
)
from sculptor.artifacts.sdf import grid_world_from_voxel, voxel_centers
from sculptor.dataset import PreparedPiece, load_grids, load_manifest, split_of, write_dataset
from sculptor.errors import UserError


def prov(**params):
    return Provenance.make("pytest", params)


def test_provenance_hashes_inputs(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes(b"abc")
    p = Provenance.make("sculptor x", {"n": np.int64(3), "p": tmp_path}, {"a": f})
    assert p.inputs["a"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert p.parameters["n"] == 3 and p.parameters["p"] == str(tmp_path)
    assert p.sculptor_version


def test_registration_round_trip(tmp_path):
    reg = Registration(
        provenance=prov(units="auto"), units="m",
        scans=[ScanPose(file="a.ply", world_from_scan=np.eye(4).tolist(), fitness=0.9,
                        rmse_mm=0.2),
               ScanPose(file="b.ply", world_from_scan=None, fitness=0.0, rmse_mm=0.0,
                        placed=False, reason="no overlap")],
        piece_watertight=True, piece_height_mm=152.3)
    reg.save(tmp_path / "registration.json")
    back = Registration.load(tmp_path / "registration.json")
    assert back == reg
    raw = json.loads((tmp_path / "registration.json").read_text())
    assert raw["schema_version"] == 1 and raw["kind"] == "scan_registration"


def test_sdf_grid_round_trip_and_convention(tmp_path):
    w = grid_world_from_voxel(400.0, 400.0, 16)
    centers = voxel_centers(w, 16)
    # the grid is centred on the piece's mid-height and covers the piece with a margin
    assert np.allclose(centers.reshape(-1, 3).mean(0), [0, 0, 200.0])
    assert centers[..., 2].min() < 0 and centers[..., 2].max() > 400
    values = np.linalg.norm(centers - [0, 0, 200], axis=-1) - 150.0
    g = SdfGrid(provenance=prov(), piece_id="p", res=16, height_mm=400, truncation_mm=100,
                world_from_voxel=w.tolist(), values=values)
    g.save(tmp_path / "g.json")
    back = SdfGrid.load(tmp_path / "g.json")
    assert back.values.dtype == np.float16
    assert np.allclose(back.values, values, atol=0.2)
    assert back.voxel_mm == pytest.approx(400 * 1.15 / 16)


def test_design_round_trip(tmp_path):
    d = Design(provenance=prov(seed=1), mesh="design-000.stl", sha256="0" * 64,
               height_mm=400, bbox_mm=[100, 120, 400], volume_mm3=1.2e6, watertight=True,
               seed=1)
    d.save(tmp_path / "d.json")
    assert Design.load(tmp_path / "d.json") == d


def _toolpath() -> Toolpath:
    rng = np.random.default_rng(0)
    passes = []
    for i, op in enumerate(["rough", "finish"]):
        n = 50 + i
        passes.append(Pass(name=f"p{i}", operation=op, strategy="test", tool_id="ball-6mm",
                           setup_turntable_deg=90.0 * i, position_mm=rng.normal(size=(n, 3)),
                           tool_frame=np.tile(np.eye(3), (n, 1, 1)),
                           feed_mm_s=np.full(n, 20.0),
                           kind=rng.integers(0, 4, n), turntable_rad=np.full(n, 0.5 * i)))
    return Toolpath(provenance=prov(), design="d.stl", design_sha256="1" * 64,
                    cell="kuka-kr6-r900-turntable",
                    stock=StockSpec(kind="box", size_mm=[220, 220, 450]), passes=passes)


def test_toolpath_round_trip(tmp_path):
    tp = _toolpath()
    tp.save(tmp_path / "job.json")
    back = Toolpath.load(tmp_path / "job.json")
    assert back.n_moves == tp.n_moves == 101
    for a, b in zip(tp.passes, back.passes):
        assert a.name == b.name and a.setup_turntable_deg == b.setup_turntable_deg
        for f in Toolpath.ARRAYS:
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert set(np.unique(back.passes[0].kind)) <= {int(k) for k in MoveKind}
    header = json.loads((tmp_path / "job.json").read_text())
    assert "position_mm" not in json.dumps(header)  # arrays live in the npz


def test_robot_program_round_trip(tmp_path):
    n = 20
    rng = np.random.default_rng(1)
    prog = RobotProgram(
        provenance=prov(), robot="kuka-kr6-r900", cell="c", tool="gouge-12mm",
        joints_rad=rng.normal(size=(n, 6)), turntable_rad=rng.normal(size=n),
        base_from_tcp=np.tile(np.eye(4), (n, 1, 1)), move_kind=np.full(n, 2, np.int8),
        feed_mm_s=np.full(n, 10.0), source_index=np.zeros((n, 2), np.int32),
        config=np.zeros(n, np.int8), valid=np.ones(n, bool), valid_ratio=1.0)
    prog.save(tmp_path / "program.json")
    back = RobotProgram.load(tmp_path / "program.json")
    np.testing.assert_array_equal(back.joints_rad, prog.joints_rad)
    assert back.n == n and back.valid.dtype == bool


def test_sim_report_round_trip(tmp_path):
    r = SimReport(provenance=prov(), go=False, reasons=["A5 within 3 deg of singularity"],
                  res_mm=0.5, material={"max_gouge_mm": 0.0}, cycle_time_s=3600.0,
                  failed_moves=[{"pass_index": 1, "move_index": 7, "reason": "A5"}])
    r.save(tmp_path / "report.json")
    assert SimReport.load(tmp_path / "report.json") == r


def test_journal_round_trip_and_torn_tail(tmp_path):
    h = JournalHeader(provenance=prov(), program="p.gcode", program_sha256="2" * 64,
                      n_lines=3, port="/dev/pts/9", protocol="grbl", baud=115200)
    j = Journal(tmp_path / "j.jsonl", h)
    j.append("sent", line=1, bytes=12)
    j.append("ack", line=1)
    j.close()
    with open(tmp_path / "j.jsonl", "a") as f:
        f.write('{"ev":"sent","li')  # power cut mid-record
    header, events = Journal.read(tmp_path / "j.jsonl")
    assert header.n_lines == 3 and [e.ev for e in events] == ["sent", "ack"]
    with pytest.raises(UserError, match="already exists"):
        Journal(tmp_path / "j.jsonl", h)


def test_load_rejects_wrong_kind_version_and_garbage(tmp_path):
    _toolpath().save(tmp_path / "job.json")
    with pytest.raises(UserError, match="expected 'robot_program'"):
        RobotProgram.load(tmp_path / "job.json")
    raw = json.loads((tmp_path / "job.json").read_text())
    raw["schema_version"] = 99
    (tmp_path / "v.json").write_text(json.dumps(raw))
    with pytest.raises(UserError, match="schema_version 99"):
        Toolpath.load(tmp_path / "v.json")
    (tmp_path / "g.json").write_text("{not json")
    with pytest.raises(UserError, match="not a valid"):
        Toolpath.load(tmp_path / "g.json")
    with pytest.raises(UserError, match="not found"):
        Toolpath.load(tmp_path / "missing.json")
    (tmp_path / "job.npz").write_bytes(b"truncated")
    with pytest.raises(UserError, match="corrupt"):
        Toolpath.load(tmp_path / "job.json")


def test_atomic_output_dir_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    with pytest.raises(RuntimeError):
        with atomic_output_dir(out) as tmp:
            atomic_write_text(tmp / "new.txt", "half")
            raise RuntimeError("crash mid-stage")
    assert sorted(os.listdir(out)) == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temp dir left behind
    with atomic_output_dir(out) as tmp:
        atomic_write_text(tmp / "new.txt", "whole")
    assert sorted(os.listdir(out)) == ["new.txt"]


def test_atomic_write_mesh_and_text(tmp_path):
    m = trimesh.creation.icosphere(subdivisions=2, radius=10)
    atomic_write_mesh(tmp_path / "m.stl", m)
    back = trimesh.load(tmp_path / "m.stl")
    assert back.is_watertight and abs(back.volume - m.volume) < 1e-3
    assert [p.name for p in tmp_path.iterdir()] == ["m.stl"]


def test_dataset_write_and_read(tmp_path):
    res = 8
    pieces = [PreparedPiece(id=f"piece-{i}", values=np.full((res,) * 3, float(i)),
                            height_mm=300.0, extent_mm=300.0, bbox_mm=[100, 100, 300],
                            fields={"title": f"t{i}", "kind": "bust"}) for i in range(30)]
    m = write_dataset(tmp_path / "ds", pieces, res=res, source="scan", provenance=prov())
    assert {p.split for p in m.pieces} == {"train", "held_out"}
    assert all(p.split == split_of(p.id) for p in m.pieces)
    manifest, root = load_manifest(tmp_path / "ds")
    assert manifest.pieces[3].title == "t3"
    _, entries, grids = load_grids(tmp_path / "ds", "train")
    assert grids.shape[1:] == (res,) * 3 and len(entries) == len(manifest.split("train"))
    with pytest.raises(UserError, match="no dataset"):
        load_manifest(tmp_path / "nothing")


def test_npz_and_header_are_byte_reproducible(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    a = np.arange(1000, dtype=np.float16).reshape(10, 100)
    blobs = []
    for i in range(2):
        g = SdfGrid(provenance=prov(), piece_id="p", res=10, height_mm=1.0, truncation_mm=1.0,
                    world_from_voxel=np.eye(4).tolist(), values=np.zeros((10,) * 3))
        g.save(tmp_path / f"g{i}.json")
        blobs.append(((tmp_path / f"g{i}.npz").read_bytes(),
                      (tmp_path / f"g{i}.json").read_text().replace(f"g{i}.npz", "")))
    assert blobs[0] == blobs[1]
    from sculptor.artifacts import atomic_write_npz
    atomic_write_npz(tmp_path / "a.npz", {"b": a, "a": a})
    with np.load(tmp_path / "a.npz") as z:
        np.testing.assert_array_equal(z["b"], a)


def test_output_dir_has_ordinary_permissions(tmp_path):
    with atomic_output_dir(tmp_path / "o") as tmp:
        atomic_write_text(tmp / "x", "1")
    assert (tmp_path / "o").stat().st_mode & 0o755 == 0o755
