"""CAM on real geometry: a decimated Nefertiti scan (tests/data/nefertiti-4k.ply, 220 mm)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sculptor.artifacts.toolpath import MoveKind, Toolpath
from sculptor.cam import Cutter, MeshQuery, drop_cutter, load_design, plan_job
from sculptor.cam.gouge import check_stroke, stroke_spacing
from sculptor.cam.toolshape import gouge_body_points, gouge_cutting_points, to_piece
from sculptor.cli import app
from sculptor.profiles import load_tool

DATA = Path(__file__).parents[1] / "data"
DESIGN = DATA / "nefertiti-4k.ply"
STOCK = "120x175x230"


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    out = tmp_path_factory.mktemp("cam") / "job"
    tp = plan_job(DESIGN, out, stock=STOCK, quality="draft", progress=False)
    return out, tp


def test_job_files_round_trip(job):
    out, tp = job
    for f in ("job.json", "job.npz", "summary.json", "toolpath.png", "design.stl"):
        assert (out / f).is_file(), f
    back = Toolpath.load(out / "job.json")
    assert back.n_moves == tp.n_moves > 1000
    assert [p.name for p in back.passes] == [p.name for p in tp.passes]
    p = back.passes[-1]
    np.testing.assert_allclose(p.position_mm, tp.passes[-1].position_mm)
    # frames are rotations
    r = p.tool_frame
    np.testing.assert_allclose(np.einsum("nji,njk->nik", r, r), np.broadcast_to(np.eye(3),
                               r.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-9)


def test_roughing_in_the_round(job):
    out, tp = job
    s = json.loads((out / "summary.json").read_text())
    rough = [p for p in tp.passes if p.operation == "rough"]
    angles = {round(p.setup_turntable_deg) % 360 for p in rough}
    assert len(rough) >= 4 and len(angles) >= 3
    assert s["rest_stock_after_roughing_mm3"] < 0.6 * s["stock_volume_mm3"]
    for p in rough:
        assert p.stats["max_gouge_mm"] == 0.0  # allowance kept everywhere
        assert p.stats["holder_contacts"] == 0
        assert (p.turntable_rad == p.turntable_rad[0]).all()


def test_gouge_strokes_frames_grain_and_gouge_free(job):
    out, tp = job
    s = json.loads((out / "summary.json").read_text())
    tool = load_tool("gouge-12mm")
    fin = [p for p in tp.passes if p.operation == "finish"]
    assert sum(p.stats["strokes"] for p in fin) > 500
    assert s["max_gouge_mm"] <= 0.02 and s["gouge_free"]
    q = MeshQuery(load_design(out / "design.stl"))
    for p in fin:
        cut = np.flatnonzero(p.kind == MoveKind.CUT)
        fr = p.tool_frame[cut]
        x, z = fr[:, :, 0], fr[:, :, 2]
        # rake: the blade leans back from the surface by at least the tool's rake angle
        n_est = x * math.cos(math.radians(25)) - z * math.sin(math.radians(25))
        assert np.all(np.einsum("ij,ij->i", x, n_est) > 0.5)
        # grain z, never against: (g.d)(g.n) >= 0, d = cutting direction of each move
        d = np.diff(p.position_mm, axis=0)[cut[cut > 0] - 1]
        n = x[cut > 0]
        prod = d[:, 2] * n[:, 2] / np.maximum(np.linalg.norm(d, axis=1), 1e-9)
        final = np.abs(q.signed_distance(p.position_mm[cut[cut > 0]])) < 0.6
        assert np.mean(prod[final] >= -0.1) > 0.97
        # independent gouge check of the whole cutting shape on every cutting move
        pts = to_piece(p.position_mm[cut], fr, gouge_cutting_points(tool))
        sd = q.signed_distance(pts.reshape(-1, 3))
        assert sd.min() >= -0.021
        assert not q.inside(to_piece(p.position_mm[cut], fr, gouge_body_points(tool))
                            .reshape(-1, 3)).any()


def test_unreachable_region_is_reported_not_gouged():
    q = MeshQuery(load_design(DESIGN))
    tool = load_tool("gouge-12mm")
    # a stroke pushed 3 mm into the design: every point must be refused, none cut
    rng = np.random.default_rng(0)
    P, fi = __import__("trimesh").sample.sample_surface(q.mesh, 20, seed=1)
    N = q.mesh.face_normals[fi]
    pos, fr, rake, lift, ok, pen = check_stroke(q, tool, P - 3.0 * N, N,
                                                gouge_cutting_points(tool),
                                                gouge_body_points(tool))
    assert not ok.any()
    del rng


def test_stroke_spacing_from_scallop():
    t = load_tool("gouge-12mm")
    s = stroke_spacing(t, 0.2)
    r = t.edge_arc_radius_mm / math.cos(math.radians(t.rake_angle_deg))
    assert math.isclose(r - math.sqrt(r * r - s * s / 4), 0.2, rel_tol=1e-6)


def test_drop_cutter_ball_on_sphere_exact():
    import trimesh

    sph = trimesh.creation.icosphere(5, radius=50.0)
    xs = np.linspace(-30, 30, 31)
    cl = drop_cutter(sph.vertices, sph.faces, Cutter.ball(3.0), xs, np.array([0.0]))
    # ball centre on the 53 mm sphere (faceted sphere lies inside: within 0.1 mm)
    expect = np.sqrt(53.0 ** 2 - xs ** 2) - 3.0
    assert np.abs(cl[0] - expect).max() < 0.1
    assert (cl[0] <= expect + 1e-9).all()


def test_ball_finish_on_router(tmp_path):
    tp = plan_job(DESIGN, tmp_path / "j", tool="ball-10mm", cell="cnc-router-3axis",
                  stock="120x175x230", quality="draft", progress=False, scallop_mm=0.5)
    fin = [p for p in tp.passes if p.operation == "finish"]
    assert fin and all(p.stats["max_gouge_mm"] <= 0.02 for p in fin)
    assert all((p.turntable_rad == 0).all() for p in tp.passes)


runner = CliRunner()


@pytest.mark.parametrize("args,needle", [
    (["--tool", "chisel-99"], "unknown tool"),
    (["--scallop-mm", "0"], "scallop"),
    (["--scallop-mm", "-1"], "scallop"),
    (["--stock", "50x50x50"], "larger than the stock"),
    (["--stock", "axbxc"], "XxYxZ"),
    (["--grain", "w"], "grain"),
    (["--quality", "best"], "quality"),
    (["--cell", "cnc-router-3axis"], "gouge"),
])
def test_cli_bad_input(tmp_path, args, needle):
    out = tmp_path / "job"
    r = runner.invoke(app, ["cam", str(DESIGN), "--out", str(out), "--no-progress", *args])
    assert r.exit_code == 2, r.output
    assert needle in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_bad_meshes(tmp_path):
    import trimesh

    m = trimesh.load(DESIGN)
    open_m = m.copy()
    open_m.update_faces(np.arange(len(m.faces)) > 400)  # a big hole
    open_m.export(tmp_path / "open.stl")
    r = runner.invoke(app, ["cam", str(tmp_path / "open.stl"), "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and "watertight" in r.output
    # two overlapping copies intersect each other
    b = m.copy()
    b.apply_translation([20.0, 0, 0])
    trimesh.util.concatenate([m, b]).export(tmp_path / "self.stl")
    r = runner.invoke(app, ["cam", str(tmp_path / "self.stl"), "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and "intersects itself" in r.output
    (tmp_path / "junk.stl").write_bytes(b"not a mesh")
    r = runner.invoke(app, ["cam", str(tmp_path / "junk.stl"), "--out", str(tmp_path / "c")])
    assert r.exit_code == 2
    small = m.copy()
    small.apply_scale(0.001)
    small.export(tmp_path / "metres.stl")
    r = runner.invoke(app, ["cam", str(tmp_path / "metres.stl"), "--out", str(tmp_path / "d")])
    assert r.exit_code == 2 and "mm" in r.output
    assert not any((tmp_path / x).exists() for x in "abcd")


def test_gouge_roughing_without_spindle(tmp_path):
    """A cell without a spindle roughs with a big gouge: strokes, chip depth per level,
    every roughing stroke clear of the design and the holder clear of the part."""
    tp = plan_job(DESIGN, tmp_path / "j", rough_tool="gouge-25mm", stock=STOCK,
                  quality="draft", progress=False, min_setups=4)
    rough = [p for p in tp.passes if p.operation == "rough"]
    assert sum(p.stats["strokes"] for p in rough) > 100
    for p in rough:
        assert p.strategy.endswith("gouge-strokes")
        assert p.stats["max_gouge_mm"] == 0.0 and p.stats["holder_contacts"] == 0


def test_no_move_below_the_table(job):
    out, tp = job
    for p in tp.passes:
        assert p.position_mm[:, 2].min() >= 0.0, p.name


def test_job_within_the_arms_reach(job):
    """The robot solver (not the planner's own check) finds every move of the smallest
    roughing pass and of the largest finishing pass in the turntable cell."""
    from sculptor.robot import solve_program

    out, tp = job
    s = json.loads((out / "summary.json").read_text())
    sub = Toolpath.load(out / "job.json")
    rough = min((p for p in sub.passes if p.operation == "rough" and p.n_moves),
                key=lambda p: p.n_moves)
    fin = max((p for p in sub.passes if p.operation == "finish"), key=lambda p: p.n_moves)
    sub.passes = [rough, fin]
    prog = solve_program(sub, sub.cell, progress=False)
    assert prog.valid_ratio == 1.0, prog.failures[:3]
    assert all(p["arm_unreachable_moves"] == 0 for p in s["passes"]
               if p["operation"] == "rough")
    # where downhill strokes are out of the arm's reach, strokes across the grain cut
    assert s["finishing"]["across_grain_strokes"] > 0
    assert s["finishing"]["arm_unreachable_points"] < 0.05 * sum(
        len(p.position_mm) for p in tp.passes if p.operation == "finish")


def test_stock_model_matches_the_moves(job):
    """The CAM's claimed removal per roughing pass is what its moves cut: the roughing
    passes carved in order by the simulator's dexel engine (an independent swept-volume
    carver) remove the same volume (within 10 % of the total), and no rapid moves through
    wood."""
    from sim import dexel
    from sim.carve import stock_grid
    from sim.run import load_job

    out, _ = job
    sj = load_job(out)
    grid = stock_grid(sj.toolpath, 4.0, sj.stock_mesh)
    real, claimed = [], []
    for i, p in enumerate(sj.toolpath.passes):
        if p.operation != "rough" or p.n_moves == 0:
            continue
        v0 = grid.volume_mm3
        rapid = dexel.carve_pass_dexel(grid, p.position_mm, p.kind,
                                       dexel.pass_axis(p.tool_frame), sj.tools[i], None)
        real.append(v0 - grid.volume_mm3)
        claimed.append(p.stats["stock_removed_mm3"])
        assert rapid.sum() < 0.001 * real[-1] + 1.0, (p.name, (rapid > 0).sum())
    real, claimed = np.array(real), np.array(claimed)
    total = real.sum()
    print("real cm3", np.round(real / 1e3), "claimed", np.round(claimed / 1e3))
    # the CAM's stock model is a coarser voxel model (6 mm) than this carve (4 mm), with
    # no material inside the design: partly cut voxels move between passes. Measured on
    # 2026-12-02: total -7 %, worst pass 6.9 % of the total (before the model was updated
    # from the emitted moves: one pass claimed 3x what it cut).
    assert abs(claimed.sum() - total) < 0.10 * total
    assert np.all(np.abs(claimed - real) < 0.10 * total), (real, claimed)


def test_air_moves_and_chords_keep_the_gouge_out_of_the_design(job):
    """Every move of the gouge finishing, sampled with the tool frame turning from one
    pose's to the next's (as the controller interpolates): rapids (every 1 mm) keep the
    whole cutting shape outside the design (1.9 mm: the planner keeps 2); plunges, cuts
    and lift-outs (at 8 steps) within 0.05 mm (the gouge tolerance 0.02 at the stroke
    points and at the quarter points the planner checks between them), so no chord
    between stroke points digs in. Once a rapid ran straight through the neck."""
    from scipy.spatial.transform import Rotation

    out, tp = job
    q = MeshQuery(load_design(out / "design.stl"))
    cut_pts = gouge_cutting_points(load_tool("gouge-12mm"))

    def worst(a, b, fa, fb, t):  # (m,) moves a -> b, frames fa -> fb, at fractions t
        r0 = Rotation.from_matrix(fa)
        rv = (r0.inv() * Rotation.from_matrix(fb)).as_rotvec()
        sd = np.full(len(a), np.inf)
        for ti in t:
            fr = (r0 * Rotation.from_rotvec(ti * rv)).as_matrix()
            pts = to_piece(a + ti * (b - a), fr, cut_pts).reshape(-1, 3)
            sd = np.minimum(sd, q.near_distance(pts, 3.0).reshape(len(a), -1).min(1))
        return sd

    rapid_min, cut_min, n_rapid = np.inf, np.inf, 0
    for p in (p for p in tp.passes if p.operation == "finish"):
        P, F, K = p.position_mm, p.tool_frame, p.kind[1:]
        a, b, fa, fb = P[:-1], P[1:], F[:-1], F[1:]
        c = K != MoveKind.RAPID
        cut_min = min(cut_min, worst(a[c], b[c], fa[c], fb[c], np.linspace(0, 1, 9)).min())
        for i in np.flatnonzero(~c):
            n = max(2, int(np.ceil(np.linalg.norm(b[i] - a[i]))) + 1)
            rapid_min = min(rapid_min, worst(a[i:i + 1], b[i:i + 1], fa[i:i + 1],
                                             fb[i:i + 1], np.linspace(0, 1, n)).min())
            n_rapid += 1
    assert n_rapid > 100
    assert rapid_min >= 1.9
    assert cut_min >= -0.05
    s = json.loads((out / "summary.json").read_text())["finishing"]
    assert s["air_links"]["links"] > 100
    assert s["air_links"]["none"] < 0.2 * s["air_links"]["links"]
