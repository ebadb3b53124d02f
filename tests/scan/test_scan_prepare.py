"""`sculptor scan prepare` on real meshes, and every bad input the issue lists."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import trimesh
from typer.testing import CliRunner

from sculptor.cli import app
from sculptor.dataset import load_grids, load_manifest

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, meshes_dir):
    tmp = tmp_path_factory.mktemp("prep")
    meta = tmp / "meta.csv"
    meta.write_text("file,title,year,material,exhibited,units\n"
                    "nefertiti-8k.ply,Bust,1345,limestone,\"Berlin, 2024\",mm\n"
                    "stanford-bunny-8k.ply,Bunny,1994,terracotta,,m\n")
    out = tmp / "ds"
    r = run("scan", "prepare", meshes_dir / "nefertiti-8k.ply",
            meshes_dir / "stanford-bunny-8k.ply", "--out", out, "--res", 32, "--meta", meta)
    assert r.exit_code == 0, r.output
    return out


def test_manifest_provenance_and_grids(dataset, meshes_dir):
    manifest, root = load_manifest(dataset)
    assert manifest.source == "scan" and manifest.res == 32
    by_id = {p.id: p for p in manifest.pieces}
    nef = by_id["nefertiti-8k"]
    assert nef.title == "Bust" and nef.year == 1345 and nef.material == "limestone"
    assert nef.exhibited == "Berlin, 2024" and nef.split in ("train", "held_out")
    assert nef.source_files == [str(meshes_dir / "nefertiti-8k.ply")]
    assert len(nef.source_sha256[0]) == 64
    # Nefertiti's bust is ~495 mm from base to crown along the file's z
    assert 440 < nef.height_mm < 510
    bunny = by_id["stanford-bunny-8k"]
    assert 130 < bunny.height_mm < 170  # metres in the file -> mm, standing on its base
    _, entries, grids = load_grids(dataset)
    assert grids.shape == (2, 32, 32, 32)
    for g in grids:
        assert g.min() == pytest.approx(-1, abs=0.05) and g.max() == pytest.approx(1, abs=1e-3)
        assert 0.02 < (g < 0).mean() < 0.6


def test_pieces_stand_upright_on_their_base(dataset):
    manifest, root = load_manifest(dataset)
    for p in manifest.pieces:
        m = trimesh.load(root / p.mesh)
        assert m.bounds[0, 2] == pytest.approx(0, abs=1e-6)
        base = m.vertices[m.vertices[:, 2] <= 0.01 * max(p.bbox_mm)]
        # base centred on the origin, footprint wide enough to stand on
        assert np.abs(base[:, :2].min(0) + base[:, :2].max(0)).max() < 0.02 * p.height_mm
        assert np.ptp(base[:, :2], axis=0).min() > 0.15 * max(p.bbox_mm)


def test_prepare_dir_input(tmp_path, meshes_dir):
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(meshes_dir / "nefertiti-8k.ply", d / "a.ply")
    r = run("scan", "prepare", d, "--out", tmp_path / "ds", "--res", 16)
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text())["pieces"][0]["id"] == "a"


def _bad_files(tmp: Path, meshes_dir: Path) -> dict[str, Path]:
    src = (meshes_dir / "nefertiti-8k.ply").read_bytes()
    files = {}
    files["empty"] = tmp / "empty.ply"
    files["empty"].write_bytes(b"")
    files["truncated"] = tmp / "truncated.ply"
    files["truncated"].write_bytes(src[: len(src) // 3])
    files["not_a_mesh"] = tmp / "notes.obj"
    files["not_a_mesh"].write_text("this is a shopping list, not a mesh\n" * 20)
    files["few_points"] = tmp / "few.ply"
    trimesh.PointCloud(np.random.default_rng(0).normal(size=(12, 3))).export(files["few_points"])
    pts = np.random.default_rng(1).normal(size=(500, 3))
    pts[17] = np.nan
    files["nan"] = tmp / "nan.ply"
    trimesh.PointCloud(pts).export(files["nan"])
    files["no_faces"] = tmp / "cloud.ply"
    trimesh.PointCloud(np.random.default_rng(2).normal(size=(500, 3))).export(files["no_faces"])
    big = trimesh.load(meshes_dir / "nefertiti-8k.ply")
    big.apply_scale(1000.0)  # 495 m tall: a mm file read as if mm were micrometres
    files["units_1000x"] = tmp / "huge.ply"
    big.export(files["units_1000x"])
    return files


def _bad_strips(tmp: Path, meshes_dir: Path) -> dict[str, Path]:
    src = (meshes_dir / "igea-strips-part.ply").read_bytes()
    files = {"strips_truncated": tmp / "strips-cut.ply",
             "strips_header_only": tmp / "strips-hdr.ply"}
    files["strips_truncated"].write_bytes(src[: len(src) // 2])
    files["strips_header_only"].write_bytes(src[: src.index(b"end_header") + 11])
    return files


@pytest.mark.parametrize("case", ["empty", "truncated", "not_a_mesh", "few_points", "nan",
                                  "no_faces", "units_1000x", "strips_truncated",
                                  "strips_header_only"])
def test_prepare_bad_input_one_line_exit_2_nothing_written(tmp_path, meshes_dir, case):
    f = {**_bad_files(tmp_path, meshes_dir), **_bad_strips(tmp_path, meshes_dir)}[case]
    out = tmp_path / "ds"
    r = run("scan", "prepare", meshes_dir / "nefertiti-8k.ply", f, "--out", out, "--res", 16)
    assert r.exit_code == 2, (case, r.output)
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds")]


def assert_refused(r, out: Path) -> None:
    """Exit 2, one line `error: ...`, nothing (not even a temp dir) left beside --out."""
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


@pytest.mark.parametrize("case", ["empty", "truncated", "few_points", "nan", "not_a_mesh",
                                  "strips_truncated"])
def test_register_bad_input_one_line_exit_2(tmp_path, meshes_dir, bunny_dir, case):
    f = {**_bad_files(tmp_path, meshes_dir), **_bad_strips(tmp_path, meshes_dir)}[case]
    out = tmp_path / "reg"
    assert_refused(run("scan", "register", bunny_dir / "bun000.ply", f, "--out", out), out)


def test_prepare_reads_triangle_strip_ply(tmp_path, meshes_dir):
    out = tmp_path / "ds"
    r = run("scan", "prepare", meshes_dir / "igea-strips-part.ply", "--out", out, "--res", 16)
    assert r.exit_code == 0, r.output
    manifest, _ = load_manifest(out)
    assert manifest.pieces[0].units == "m" and 20 < manifest.pieces[0].height_mm < 120


@pytest.mark.parametrize("name, file_up", [("igea-8k.ply", [0, 1, 0]),
                                           ("nefertiti-8k.ply", [0, 0, 1]),
                                           ("stanford-bunny-8k.ply", [0, 1, 0])])
def test_real_pieces_stand_on_their_real_base(meshes_dir, name, file_up):
    """Igea on her neck (she used to lie on her side, on the flat patch by her ear),
    Nefertiti on her shoulders (she used to stand on the flat top of her crown), the bunny
    on its feet; checked by eye on renders of the full-resolution meshes."""
    from sculptor.scan.canonical import canonical_pose_method, clean_mesh

    upright, piece_from_input, used = canonical_pose_method(
        clean_mesh(trimesh.load(meshes_dir / name)))
    assert used == "flat_base"
    up_in_input = piece_from_input[:3, :3].T @ [0, 0, 1]
    assert up_in_input @ file_up > np.cos(np.radians(20))
    assert upright.bounds[0, 2] == pytest.approx(0, abs=1e-9)


def test_register_two_objects_refused(tmp_path, meshes_dir, bunny_dir):
    from sculptor.scan import virtual_scan

    nef = virtual_scan(trimesh.load(meshes_dir / "nefertiti-8k.ply"), n_views=2, seed=1)
    paths = [bunny_dir / "bun000.ply", bunny_dir / "bun045.ply"]
    for i, s in enumerate(nef):
        paths.append(tmp_path / f"nef{i}.ply")
        trimesh.PointCloud(s / 1000.0 * 0.3).export(paths[-1])  # metres, bunny-sized
    out = tmp_path / "reg"
    r = run("scan", "register", *paths, "--out", out)
    assert r.exit_code == 2, r.output
    assert "different objects" in r.output and not out.exists()


def test_register_mixed_units_refused(tmp_path, bunny_dir):
    from sculptor.scan.io import load_geometry

    mm = tmp_path / "bun045_mm.ply"
    trimesh.PointCloud(load_geometry(bunny_dir / "bun045.ply").points * 1000).export(mm)
    r = run("scan", "register", bunny_dir / "bun000.ply", mm, "--out", tmp_path / "reg")
    assert "metres and millimetres" in r.output
    assert_refused(r, tmp_path / "reg")


@pytest.mark.parametrize("scale, units", [(1000.0, "m"), (1e6, "auto")])
def test_register_units_off_by_1000x_refused(tmp_path, bunny_dir, scale, units):
    from sculptor.scan.io import load_geometry

    paths = []
    for name in ("bun000", "bun045"):
        paths.append(tmp_path / f"{name}.ply")
        trimesh.PointCloud(load_geometry(bunny_dir / f"{name}.ply").points * scale).export(
            paths[-1])
    r = run("scan", "register", *paths, "--out", tmp_path / "reg", "--units", units)
    assert "1000x" in r.output
    assert_refused(r, tmp_path / "reg")


def test_register_needs_two_scans(tmp_path, bunny_dir):
    r = run("scan", "register", bunny_dir / "bun000.ply", "--out", tmp_path / "reg")
    assert r.exit_code == 2 and "at least two" in r.output
