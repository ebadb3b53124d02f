"""Post-processors: a robot program -> the controller's own language.

Dialects sit in one registry (``DIALECTS``): each is a render function (context -> file
texts), the file pattern and a parser for the round-trip tests. :func:`write_program`
is the shared writer: it builds the context, renders, checks every file against the
controller profile (line length, characters, line count) and only then writes the files
atomically. :func:`post_job` is what ``sculptor post`` calls.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from sculptor.artifacts.core import atomic_write_text
from sculptor.artifacts.program import RobotProgram
from sculptor.artifacts.toolpath import Toolpath
from sculptor.errors import UserError
from sculptor.post import gcode, krl, rapid, urscript
from sculptor.post.common import PostContext, check_lines, module_name
from sculptor.profiles import ControllerProfile, load_cell, load_controller, load_robot
from sculptor.robot.cell import resolve_tool

Dialect = Literal["krl", "rapid", "urscript", "gcode-joint", "gcode-3axis"]


@dataclass(frozen=True)
class DialectSpec:
    render: Callable[[PostContext], dict[str, str]]
    parse: Callable[[list[Path]], dict]
    default_controller: str
    machine: str  # "robot" or "cnc3"
    name_len: int  # identifier length the language allows


DIALECTS: dict[str, DialectSpec] = {
    "krl": DialectSpec(krl.render, krl.parse, "kuka-krc4", "robot", 24),
    "rapid": DialectSpec(rapid.render, rapid.parse, "abb-irc5", "robot", 28),
    "urscript": DialectSpec(urscript.render, urscript.parse, "ur-cb", "robot", 40),
    "gcode-joint": DialectSpec(gcode.render_joint, gcode.parse, "grbl-6axis", "robot", 40),
    "gcode-3axis": DialectSpec(gcode.render_3axis, gcode.parse, "grbl-router", "cnc3", 40),
}


def _dialect(name: str) -> DialectSpec:
    if name not in DIALECTS:
        raise UserError(f"unknown dialect '{name}'; choose one of {', '.join(DIALECTS)}")
    return DIALECTS[name]


def pick_controller(dialect: str, cell_controller: str | None) -> ControllerProfile:
    """The cell's controller when it speaks the dialect, else the dialect's default."""
    spec = _dialect(dialect)
    if cell_controller:
        c = load_controller(cell_controller)
        if c.dialect == dialect:
            return c
    return load_controller(spec.default_controller)


def render_program(program: RobotProgram, toolpath: Toolpath | None, dialect: str,
                   out: Path, controller: ControllerProfile | None = None) -> dict[Path, str]:
    """File texts by output path, checked against the controller; nothing is written."""
    spec = _dialect(dialect)
    if program.machine != spec.machine:
        raise UserError(f"dialect '{dialect}' is for a {spec.machine} machine; this program "
                        f"is for a {program.machine} (cell {program.cell})")
    if program.n == 0:
        raise UserError("the program has no points")
    if not bool(program.valid.all()):
        n_bad = int((~program.valid.astype(bool)).sum())
        raise UserError(f"the program has {n_bad} unreachable or unsafe points (valid ratio "
                        f"{program.valid_ratio:.4f}); see failures in program.json")
    cell = load_cell(program.cell)
    controller = controller or pick_controller(dialect, cell.controller)
    if controller.dialect != dialect:
        raise UserError(f"controller '{controller.name}' speaks {controller.dialect}, not "
                        f"{dialect}")
    robot = load_robot(program.robot) if program.robot else None
    tools = [resolve_tool(t) for t in (program.tools or [program.tool])]
    out = Path(out)
    ctx = PostContext(program=program, toolpath=toolpath, cell=cell, robot=robot,
                      controller=controller, name=module_name(out.stem, spec.name_len),
                      tools=tools)
    files = spec.render(ctx)
    result: dict[Path, str] = {}
    for fname, text in files.items():
        # the main file takes the user's path; companions sit next to it
        if fname.startswith(ctx.name + ".") and Path(fname).suffix == out.suffix:
            path = out
        elif len(files) == 1:
            path = out
        else:
            path = out.parent / fname
        check_lines(path.name, text, controller)
        if controller.max_program_lines and dialect in ("krl", "rapid"):
            n_lines = text.count("\n")
            if n_lines > controller.max_program_lines:
                raise UserError(f"{path.name} has {n_lines} lines, more than controller "
                                f"'{controller.name}' accepts ({controller.max_program_lines})")
        result[path] = text
    return result


def write_program(program: RobotProgram, toolpath: Toolpath | None, dialect: str, out: Path,
                  controller: ControllerProfile | None = None) -> list[Path]:
    """Render, check and write the program files atomically; returns their paths.

    ``out`` is the main file (KRL: ``NAME.src`` plus ``NAME.dat``; split programs add
    ``NAME_001.src`` ...; RAPID ``NAME.mod``; URScript ``NAME.script``; G-code ``FILE``).
    """
    texts = render_program(program, toolpath, dialect, Path(out), controller)
    written: list[Path] = []
    try:
        for path, text in texts.items():
            atomic_write_text(path, text)
            written.append(path)
    except BaseException:
        for p in written:
            try:
                os.unlink(p)
            except OSError:
                pass
        raise
    return written


def parse_program(paths: list[Path], dialect: str) -> dict:
    """Parse what :func:`write_program` wrote (for round-trip checks)."""
    return _dialect(dialect).parse([Path(p) for p in paths])


def post_job(job: Path, dialect: str, out: Path, *, cell: str | None = None,
             a5_margin_deg: float = 10.0, chord_tol_mm: float = 0.01,
             progress: bool = True) -> dict:
    """``sculptor post``: load JOB/job.json, solve, save JOB/program.json, write ``out``.

    Raises UserError (after saving program.json, so ``sculptor sim`` can show them) when
    points are unreachable, naming the first failures with pass, move, position and why.
    """
    from sculptor.robot.solver import solve_program

    spec = _dialect(dialect)
    job = Path(job)
    if not job.is_dir():
        raise UserError(f"job directory not found: {job} (make one with sculptor cam)")
    tp = Toolpath.load(job / "job.json")
    if tp.machine != spec.machine:
        raise UserError(f"dialect '{dialect}' is for a {spec.machine} job; {job} is a "
                        f"{tp.machine} job")
    cell_name = cell or tp.cell
    from sculptor.artifacts.core import sha256_file
    from sculptor.robot.solver import solve_key

    job_sha = sha256_file(job / "job.json")
    key = solve_key(tp, job_sha, cell_name, a5_margin_deg=a5_margin_deg,
                    chord_tol_mm=chord_tol_mm)
    program = _reusable_program(job, key)
    png = job / "program.png"
    if program is None:  # a second dialect of the same job reuses the solved program
        program = solve_program(tp, cell_name, None, a5_margin_deg=a5_margin_deg,
                                chord_tol_mm=chord_tol_mm, progress=progress)
        program.job_sha256 = job_sha
        program.provenance.parameters["solve_key"] = key
        program.save(job / "program.json")
    if program.machine != "robot" or not png.is_file() or png.stat().st_mtime_ns < (
            job / "program.json").stat().st_mtime_ns:
        from sculptor.robot.plot import plot_program

        png = plot_program(program, png, a5_margin_deg)
    if program.failures and program.valid_ratio == 0.0 and program.machine == "robot":
        raise UserError(f"no move of {job} is reachable by {program.robot} in cell "
                        f"{program.cell} ({program.failures[0]['reason']}): the stock is out "
                        "of the robot's reach or badly placed; check the cell's "
                        "world_from_turntable / world_from_robot_base")
    if program.failures:
        n_bad = sum(f["count"] for f in program.failures)
        first = "; ".join(
            f"pass {f['pass']} moves {f['moves'][0]}-{f['moves'][1]} at {f['position_mm']} "
            f"mm: {f['reason']}" for f in program.failures[:3])
        raise UserError(f"{n_bad} of {tp.n_moves} moves cannot be reached safely (valid ratio "
                        f"{program.valid_ratio:.4f}): {first}; details in {job}/program.json")
    paths = write_program(program, tp, dialect, Path(out))
    return {"program": job / "program.json", "png": png, "files": paths, "points": program.n,
            "valid_ratio": program.valid_ratio, "max_chord_error_mm": program.max_chord_error_mm}


def _reusable_program(job: Path, key: str) -> RobotProgram | None:
    """JOB/program.json when it was solved from the same job, cell, profiles, solver and
    parameters (``solve_key``), else None."""
    path = job / "program.json"
    if not path.is_file():
        return None
    try:
        prog = RobotProgram.load(path)
    except (UserError, OSError, ValueError):
        return None
    return prog if prog.provenance.parameters.get("solve_key") == key else None


__all__ = ["DIALECTS", "write_program", "parse_program", "render_program", "post_job",
           "pick_controller"]
