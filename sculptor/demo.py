"""`sculptor demo`: the whole chain on the embedded defaults, as a new user meets it.

Each stage is the real code with the user-facing entry point of its package:
1. virtual-scan a corpus piece from several sides, register the scans, prepare the dataset;
2. generate a new sculpture with the shipped checkpoint;
3. plan roughing + gouge finishing for the default cell;
4. solve the robot program; write KRL and joint G-code;
5. simulate: carved result, deviation, robot checks, preview page;
6. stream the G-code to the virtual controller over a pseudo-terminal.
Then a summary table (stage, time, key figure, artifact) and the next commands.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.table import Table

from sculptor.artifacts.core import Provenance, atomic_write_json
from sculptor.errors import UserError

DEFAULT_CELL = "kuka-kr6-r900-turntable"
DEFAULT_TOOL = "gouge-12mm"


@dataclass
class DemoSize:
    """How big each stage runs: `full` is what a new user sees, `quick` is for tests."""

    scans: tuple[str, ...]  # which shipped scans to register ("*" = all seven)
    prepare_res: int
    height_mm: float
    cam_quality: str
    sim_res_mm: float

    @classmethod
    def named(cls, name: str) -> "DemoSize":
        if name == "full":
            return cls(scans=("*",), prepare_res=64, height_mm=360.0, cam_quality="draft",
                       sim_res_mm=0.5)
        if name == "quick":
            return cls(scans=("bun000.ply", "bun090.ply", "bun180.ply", "bun270.ply"),
                       prepare_res=32, height_mm=300.0, cam_quality="draft", sim_res_mm=2.0)
        raise UserError(f"unknown demo size '{name}'; use full or quick")


@dataclass
class StageResult:
    name: str
    seconds: float
    figure: str
    artifact: str
    data: dict = field(default_factory=dict)


@dataclass
class DemoResult:
    out: Path
    stages: list[StageResult]

    def stage(self, name: str) -> StageResult:
        return next(s for s in self.stages if s.name == name)


def _timed(console: Console, name: str, fn: Callable[[], tuple[str, str, dict]]) -> StageResult:
    console.rule(f"[bold]{name}")
    t0 = time.perf_counter()
    figure, artifact, data = fn()
    dt = time.perf_counter() - t0
    console.print(f"[green]{name}[/green] done in {dt:.1f} s: {figure}")
    return StageResult(name, dt, figure, artifact, data)


def blank_for(design, margin_mm: float = 10.0, round_mm: float = 10.0) -> str:
    """The block a woodworker would saw for ``design`` (trimesh, mm): its footprint turned
    on the turntable (the diameter of its plan around the base centre) plus ``margin_mm``
    each side, its height plus ``margin_mm`` on top, rounded up to ``round_mm``."""
    import numpy as np

    v = np.asarray(design.vertices)  # piece frame: the turntable axis is z
    side = 2 * float(np.linalg.norm(v[:, :2], axis=1).max()) + 2 * margin_mm
    height = float(np.ptp(v[:, 2])) + margin_mm

    def up(x: float) -> int:
        return int(np.ceil(x / round_mm) * round_mm)

    return f"{up(side)}x{up(side)}x{up(height)}"


def write_overview(path: Path, pieces: list[tuple[str, Path, bool]], px: int = 320) -> Path:
    """One picture of the chain: each piece (front and three-quarter view) with a caption;
    a piece flagged True is shown in its canonical upright pose (registered scans are
    in the frame of their first scan)."""
    import trimesh

    from sculptor.render import render_mesh, tile_sheet, write_png
    from sculptor.scan.canonical import canonical_pose

    tiles, titles = [], []
    for title, mesh_path, upright in pieces:
        mesh = trimesh.load(mesh_path, force="mesh")
        if upright:
            mesh, _ = canonical_pose(mesh)
        tiles.append([render_mesh(mesh, v, (px, px), background=(0.96, 0.96, 0.95))
                      for v in ("front", "three_quarter")])
        titles.append(title)
    return write_png(path, tile_sheet(tiles, titles, columns=len(tiles)))


def demo_scans_dir() -> Path:
    """The shipped real range scans the demo registers (Stanford Bunny, 7 scans)."""
    return Path(__file__).parent / "data" / "scans" / "stanford-bunny"


def _moved_demo_scans(scan_dir: Path, seed: int, which: tuple[str, ...] = ("*",)):
    """Copy the shipped scans into ``scan_dir``, each but the first moved by its own random
    rigid motion (so registration starts from unknown poses, as with a hand-held scanner;
    the first scan keeps the scanner's frame, whose up axis the upright pose uses).

    Returns (paths, true world_from_moved (4, 4) per scan in metres, points per scan).
    """
    import numpy as np
    import trimesh

    from sculptor.scan.evaluate import random_motion, read_stanford_conf

    src = demo_scans_dir()
    truth = read_stanford_conf(src / "bun.conf")
    rng = np.random.default_rng(seed)
    scan_dir.mkdir(parents=True, exist_ok=True)
    paths, true_poses, points = [], [], []
    names = sorted(n for n in truth if (src / n).exists() and ("*" in which or n in which))
    for name in names:
        pts = np.asarray(trimesh.load(src / name, process=False).vertices, np.float64)
        # the first scan keeps the scanner's frame (y up), the others are lost (metres)
        moved_from_orig = random_motion(rng, 0.3) if paths else np.eye(4)
        moved = pts @ moved_from_orig[:3, :3].T + moved_from_orig[:3, 3]
        path = scan_dir / name
        trimesh.PointCloud(moved).export(path)
        paths.append(path)
        true_poses.append(truth[name] @ np.linalg.inv(moved_from_orig))
        points.append(moved)
    return paths, true_poses, points


def _registration_errors(reg, true_poses, points):
    """Per-scan (rotation error deg, RMS displacement mm) of the placed scans."""
    import numpy as np

    from sculptor.scan.evaluate import relative_pose_errors

    mm = 1000.0 if reg.units == "m" else 1.0
    keep = [k for k, s in enumerate(reg.scans) if s.placed]
    rot, disp = relative_pose_errors([np.asarray(reg.scans[k].world_from_scan) for k in keep],
                                     [true_poses[k] for k in keep], [points[k] for k in keep])
    return rot, disp * mm


def run_demo(out: Path, size: str = "full", seed: int = 0, progress: bool = True,
             console: Console | None = None) -> DemoResult:
    """Run every stage into ``out`` and return what each produced."""
    import numpy as np
    import trimesh

    cfg = DemoSize.named(size)
    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stages: list[StageResult] = []

    # 1. scan ------------------------------------------------------------------------
    def scan_stage():
        from sculptor.scan import prepare_dataset, register_scans

        paths, true_poses, points = _moved_demo_scans(out / "scans", seed, cfg.scans)
        reg = register_scans(paths, out / "registered", units="auto", progress=progress)
        placed = sum(s.placed for s in reg.scans)
        rot, disp = _registration_errors(reg, true_poses, points)
        manifest = prepare_dataset([out / "registered" / "piece.ply"], out / "dataset",
                                   res=cfg.prepare_res, progress=progress)
        return (f"{placed}/{len(paths)} real scans placed from unknown poses, worst error "
                f"{rot.max():.2f} deg / {disp.max():.2f} mm vs Stanford's alignment; "
                f"watertight {reg.piece_watertight}, {manifest.pieces[0].height_mm:.0f} mm tall",
                str(out / "registered" / "piece.ply"),
                {"placed": placed, "n_scans": len(paths), "watertight": reg.piece_watertight,
                 "worst_rot_deg": float(rot.max()), "worst_disp_mm": float(disp.max()),
                 "units": reg.units, "height_mm": manifest.pieces[0].height_mm})

    stages.append(_timed(console, "scan", scan_stage))

    # 2. generate ----------------------------------------------------------------------
    def generate_stage():
        from sculptor.gen3d import generate

        designs = generate(out / "designs", n=1, seed=seed, height_mm=cfg.height_mm,
                           progress=progress)
        d = designs[0]
        return (f"height {d.height_mm:.0f} mm, volume {d.volume_mm3 / 1e6:.2f} L, "
                f"watertight {d.watertight}", str(out / "designs" / d.mesh),
                {"height_mm": d.height_mm, "watertight": d.watertight})

    stages.append(_timed(console, "generate", generate_stage))
    design_path = Path(stages[-1].artifact)

    # 3. cam ---------------------------------------------------------------------------
    def cam_stage():
        from sculptor.cam import plan_job

        stock = blank_for(trimesh.load(design_path, force="mesh"))
        tp = plan_job(design_path, out / "job", tool=DEFAULT_TOOL, cell=DEFAULT_CELL,
                      stock=stock, quality=cfg.cam_quality, progress=progress)
        summary = json.loads((out / "job" / "summary.json").read_text())
        strokes = sum(p.stats.get("strokes", 0) for p in tp.passes)
        return (f"{stock} mm blank, {len(tp.passes)} passes, {tp.n_moves} moves, "
                f"{strokes} gouge strokes", str(out / "job" / "job.json"),
                {"n_moves": tp.n_moves, "n_passes": len(tp.passes), "strokes": strokes,
                 "stock": stock, "summary": summary})

    stages.append(_timed(console, "cam", cam_stage))

    # 4. post --------------------------------------------------------------------------
    def post_stage():
        from sculptor.artifacts import Toolpath
        from sculptor.post import write_program
        from sculptor.profiles import load_cell, load_tool
        from sculptor.robot import solve_program

        tp = Toolpath.load(out / "job" / "job.json")
        cell = load_cell(tp.cell)
        prog = solve_program(tp, cell, load_tool(DEFAULT_TOOL), progress=progress)
        prog.save(out / "job" / "program.json")
        krl = write_program(prog, tp, "krl", out / "post" / "sculpture.src")
        gcode = write_program(prog, tp, "gcode-joint", out / "post" / "sculpture.gcode")
        n_lines = sum(1 for _ in open(gcode[0]))
        return (f"valid ratio {prog.valid_ratio:.3f}, {prog.n} robot targets, "
                f"{n_lines} G-code lines", str(gcode[0]),
                {"valid_ratio": prog.valid_ratio, "krl": [str(p) for p in krl],
                 "gcode": str(gcode[0]), "n_targets": prog.n})

    stages.append(_timed(console, "post", post_stage))

    # 5. sim ---------------------------------------------------------------------------
    def sim_stage():
        from sim import run_simulation

        rep = run_simulation(out / "job", res_mm=cfg.sim_res_mm, progress=progress)
        mat = rep.material
        return (f"{'GO' if rep.go else 'NO-GO'}; max gouge "
                f"{mat.get('max_gouge_mm', float('nan')):.2f} mm, cycle "
                f"{(rep.cycle_time_s or 0) / 60:.0f} min",
                str(out / "job" / "sim" / "preview.html"),
                {"go": rep.go, "reasons": rep.reasons, "cycle_time_s": rep.cycle_time_s})

    stages.append(_timed(console, "sim", sim_stage))

    # 6. stream ------------------------------------------------------------------------
    def stream_stage():
        from sculptor.stream import stream_program
        from sim.controller import serve

        gcode = Path(stages[-2].data["gcode"])
        journal = out / "post" / "sculpture.journal"
        journal.unlink(missing_ok=True)  # a fresh demo run streams a fresh program
        served = serve(protocol="grbl", time_scale=1000.0)
        try:
            s = stream_program(gcode, served.port, protocol="grbl", progress=progress,
                               journal=journal)
        finally:
            served.stop()
        if not s.ok:
            raise UserError(f"stream stopped: {s.message}")
        return (f"{s.lines_acknowledged}/{s.lines_total} lines acknowledged, {s.errors} "
                f"errors, {s.elapsed_s:.0f} s", str(journal),
                {"acknowledged": s.lines_acknowledged, "lines_total": s.lines_total,
                 "errors": s.errors, "state": s.state})

    stages.append(_timed(console, "stream", stream_stage))

    overview = write_overview(out / "overview.png", [
        ("scanned piece (registered, posed upright)", out / "registered" / "piece.ply", True),
        ("generated design", design_path, False),
        ("carved (simulated)", out / "job" / "sim" / "carved.stl", False)])
    console.print(f"overview picture: {overview}")
    result = DemoResult(out, stages)
    atomic_write_json(out / "summary.json", {
        "provenance": json.loads(Provenance.make("sculptor demo", {"size": size, "seed": seed})
                                 .model_dump_json()),
        "overview": str(overview),
        "stages": [{"name": s.name, "seconds": round(s.seconds, 2), "figure": s.figure,
                    "artifact": s.artifact, "data": s.data} for s in stages]})
    _print_summary(console, result)
    return result


def _print_summary(console: Console, result: DemoResult) -> None:
    t = Table(title="sculptor demo")
    for col in ("stage", "time", "key figure", "artifact"):
        t.add_column(col)
    for s in result.stages:
        t.add_row(s.name, f"{s.seconds:.1f} s", s.figure, s.artifact)
    console.print(t)
    console.print(
        "\nNext, with your own data:\n"
        "  sculptor scan register my_scans/*.ply --out piece/\n"
        "  sculptor scan prepare piece/piece.ply more_pieces/ --out dataset/ --res 64\n"
        "  sculptor train --data dataset/ --out run/           (add --device cuda on a GPU)\n"
        "  sculptor generate --checkpoint run/checkpoint.pt --n 4 --out designs/\n"
        "  sculptor cam designs/design-000.stl --tool gouge-12mm --out job/\n"
        "  sculptor sim job/ --open\n"
        "  sculptor post job/ --dialect krl --out job/sculpture.src\n"
        "  sculptor stream job/sculpture.gcode --port /dev/ttyUSB0 --check-first\n")
