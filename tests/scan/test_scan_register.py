"""Registration of the real Stanford bunny range scans from random starting poses."""

from pathlib import Path

import numpy as np
import pytest
import trimesh

from sculptor.artifacts.scan import Registration
from sculptor.scan.evaluate import apply, read_stanford_conf, relative_pose_errors
from sculptor.scan.io import load_geometry

from conftest import BUNNY_SCANS, random_motion


@pytest.fixture(scope="module")
def registered(tmp_path_factory, bunny_dir):
    """All seven real scans, each moved by a random rigid motion (metres, as scanned)."""
    from sculptor.scan import register_scans

    rng = np.random.default_rng(7)
    tmp = tmp_path_factory.mktemp("bunny_in")
    motions, paths, raw = [], [], []
    for name in BUNNY_SCANS:
        pts = load_geometry(bunny_dir / f"{name}.ply").points
        m = random_motion(rng, 0.2)
        p = tmp / f"{name}.ply"
        trimesh.PointCloud(apply(m, pts)).export(p, encoding="binary")
        motions.append(m)
        paths.append(p)
        raw.append(pts)
    out = tmp_path_factory.mktemp("bunny_out") / "reg"
    reg = register_scans(paths, out, progress=False)
    return reg, out, motions, raw, paths


def test_relative_poses_match_stanford_alignment(registered, bunny_dir):
    reg, out, motions, raw, paths = registered
    gt = read_stanford_conf(bunny_dir / "bun.conf", scale=1000.0)  # mm
    assert reg.units == "m"
    assert all(s.placed for s in reg.scans)
    mm = np.diag([1000.0, 1000.0, 1000.0, 1.0])
    est, true, pts = [], [], []
    for s, m, p, name in zip(reg.scans, motions, raw, BUNNY_SCANS):
        w = np.asarray(s.world_from_scan)
        est.append(mm @ w @ np.linalg.inv(mm))  # poses are in the input units (m)
        true.append(gt[f"{name}.ply"] @ mm @ np.linalg.inv(m) @ np.linalg.inv(mm))
        pts.append(apply(m, p) * 1000.0)
    rot_deg, disp_mm = relative_pose_errors(est, true, pts)
    assert rot_deg.max() < 0.5, rot_deg
    assert disp_mm.max() < 0.5, disp_mm


def test_outputs_are_complete_and_watertight(registered):
    reg, out, *_ = registered
    again = Registration.load(out / "registration.json")
    assert [s.file for s in again.scans] == [s.file for s in reg.scans]
    piece = trimesh.load(out / "piece.ply")
    assert piece.is_watertight and piece.is_winding_consistent
    # the bunny is about 150 mm across: the piece is in mm, not metres
    assert 120 < piece.extents.max() < 200
    fused = load_geometry(out / "fused.ply").points
    assert len(fused) > 10_000
    # the fused cloud lies on the piece
    d = np.abs(trimesh.proximity.signed_distance(piece, fused[::50]))
    assert np.median(d) < 1.0


def test_virtual_scans_of_a_piece_register(tmp_path, meshes_dir):
    from sculptor.scan import register_scans, virtual_scan

    mesh = trimesh.load(meshes_dir / "nefertiti-8k.ply")
    scans = virtual_scan(mesh, n_views=6, seed=3)
    assert len(scans) == 6 and all(len(s) > 2000 for s in scans)
    paths = []
    for i, s in enumerate(scans):
        paths.append(tmp_path / f"v{i}.ply")
        trimesh.PointCloud(s).export(paths[-1])
    reg = register_scans(paths, tmp_path / "out", progress=False)
    assert reg.units == "mm" and all(s.placed for s in reg.scans)
    piece = trimesh.load(tmp_path / "out" / "piece.ply")
    assert piece.is_watertight
    assert abs(piece.extents.max() - mesh.extents.max()) < 0.1 * mesh.extents.max()


@pytest.mark.parametrize("seed", [0, 1])
def test_virtual_scans_of_smooth_corpus_pieces_register(seed):
    """Smooth, near rotationally symmetric pieces (FPFH matches slide on them): every one
    of 6 virtual views is placed, relative poses within 1 deg / 1 mm of the true ones."""
    from sculptor.corpus import make_piece
    from sculptor.scan import virtual_scan
    from sculptor.scan.register import register_points

    mesh, _ = make_piece(seed, "standing")
    scans, scan_from_mesh = virtual_scan(mesh, n_views=6, seed=seed, pixels=256,
                                         return_poses=True)
    reg = register_points(scans)
    assert all(p is not None for p in reg.world_from_scan_mm), reg.reasons
    rot, disp = relative_pose_errors(reg.world_from_scan_mm,
                                     [np.linalg.inv(m) for m in scan_from_mesh], scans)
    assert rot.max() < 1.0 and disp.max() < 1.0, (rot, disp)
