"""What every dialect shares: the context of one post run, headers, numbers, checks.

A dialect (``krl``, ``rapid``, ``urscript``, ``gcode-joint``, ``gcode-3axis``) is a small
table of settings plus a function that turns the :class:`PostContext` into file texts; the
shared :func:`sculptor.post.write_program` validates them (line length, characters, line
count) and writes them atomically.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from sculptor import __version__
from sculptor.artifacts.program import RobotProgram
from sculptor.artifacts.toolpath import MoveKind, Toolpath
from sculptor.errors import UserError
from sculptor.profiles import CellProfile, ControllerProfile, RobotProfile, load_cell
from sculptor.robot.cell import RobotCell, resolve_tool
from sculptor.robot.kinematics import arm_config_bits, elbow_straight_kin  # noqa: F401


@dataclass
class PostContext:
    """Everything a dialect needs, in controller units where a language wants them."""

    program: RobotProgram
    toolpath: Toolpath | None
    cell: CellProfile
    robot: RobotProfile | None
    controller: ControllerProfile
    name: str  # program/module name derived from the output file
    tools: list = field(default_factory=list)
    _tool_rows: list | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return self.program.n

    @property
    def joints_deg(self) -> np.ndarray:
        return np.degrees(self.program.joints_rad)

    @property
    def e1_deg(self) -> np.ndarray:
        sign = self.cell.turntable.sign if self.cell.turntable is not None else 1
        return sign * np.degrees(self.program.turntable_rad)

    @property
    def kinds(self) -> np.ndarray:
        return self.program.move_kind

    def pass_index(self) -> np.ndarray:
        return self.program.source_index[:, 0]

    def tool_for(self, i: int):
        """Tool profile of program point i (its pass's tool)."""
        if self._tool_rows is None:  # once per run: the k-th solved pass has tools[k]
            names = self.program.tools or [self.program.tool]
            tools = self.tools or [resolve_tool(t) for t in names]
            _, k = np.unique(self.pass_index(), return_inverse=True)
            self._tool_rows = [tools[j] for j in np.minimum(k.reshape(-1), len(tools) - 1)]
        return self._tool_rows[i]

    def header_lines(self, dialect: str) -> list[str]:
        prov = self.program.provenance
        params = ", ".join(f"{k}={v}" for k, v in prov.parameters.items())
        tp = self.toolpath
        return [
            f"sculptor {__version__} post --dialect {dialect}",
            f"job: {tp.design if tp else '?'} (design sha256 "
            f"{(tp.design_sha256 if tp else '')[:12]}), created {prov.created_utc}",
            f"cell: {self.cell.name}  robot: {self.program.robot or 'cnc3'}  "
            f"controller: {self.controller.name}",
            f"tools: {', '.join(self.program.tools or [self.program.tool])}",
            f"points: {self.n}  valid ratio: {self.program.valid_ratio:.4f}  "
            f"max chord error: {self.program.max_chord_error_mm:.4f} mm",
            f"parameters: {params}",
        ]

    def durations_s(self, rapid_speed_fraction: float = 0.5) -> np.ndarray:
        """(n,) seconds for the move into each point (0 for the first).

        Cutting moves: TCP path length in the workpiece frame / feed, but never faster
        than the joint (and turntable) speed limits allow. Rapids: the slowest axis at
        ``rapid_speed_fraction`` of its max speed.
        """
        p = self.program
        n = p.n
        out = np.zeros(n)
        if n < 2:
            return out
        rc = RobotCell.load(self.cell)
        wp = np.linalg.inv(rc.base_from_workpiece(p.turntable_rad)) @ p.base_from_tcp
        length = np.linalg.norm(np.diff(wp[:, :3, 3], axis=0), axis=1)
        if self.robot is not None:
            vmax = self.robot.max_speed_rad_s
            t_joint = np.max(np.abs(np.diff(p.joints_rad, axis=0)) / vmax, axis=1)
        else:
            t_joint = np.zeros(n - 1)
        if self.cell.turntable is not None:
            t_tt = np.abs(np.diff(p.turntable_rad)) / math.radians(
                self.cell.turntable.max_speed_deg_s)
            t_joint = np.maximum(t_joint, t_tt)
        feed = np.maximum(p.feed_mm_s[1:], 1e-6)
        cut = np.maximum(length / feed, t_joint)
        rapid = t_joint / rapid_speed_fraction
        if self.robot is None:  # router rapids: use the plunge-free travel speed 50 mm/s
            rapid = np.maximum(rapid, length / 50.0)
        out[1:] = np.where(p.move_kind[1:] == MoveKind.RAPID, rapid, cut)
        return np.maximum(out, np.where(np.arange(n) > 0, 1e-4, 0.0))


# ----------------------------------------------------------------------------- numbers
def fnum(x: float, decimals: int) -> str:
    """Fixed-point number without a negative zero ("-0.000" -> "0.000")."""
    s = f"{x:.{decimals}f}"
    if s.startswith("-") and float(s) == 0.0:
        s = s[1:]
    return s


def fnums(x: np.ndarray, decimals: int) -> list[str]:
    """:func:`fnum` of every element of ``x`` (vectorised rounding; no negative zero)."""
    r = np.round(np.asarray(x, float), decimals) + 0.0  # -0.0 + 0.0 = 0.0
    fmt = f"{{:.{decimals}f}}".format
    out = [fmt(v) for v in r.tolist()]
    neg0 = "-" + fmt(0.0)
    return [v[1:] if v == neg0 else v for v in out]


def module_name(stem: str, max_len: int = 24) -> str:
    """A program identifier from a file stem: letters, digits, '_' , starting with a letter."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", stem)
    if not s or not s[0].isalpha():
        s = "P" + s
    return s[:max_len]


def comment_text(text: str, allowed: str) -> str:
    """Make text safe for a comment of a controller with a restricted character set."""
    if not allowed:
        return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    t = text.upper() if not any(c.islower() for c in allowed) else text
    return "".join(c if c in allowed and c not in "()" else " " for c in t).strip()


def check_lines(name: str, text: str, controller: ControllerProfile) -> None:
    """Syntax rules every dialect shares: line length and allowed characters."""
    lines = text.splitlines()
    longest = max(map(len, lines), default=0)
    if longest > controller.max_line_chars:
        no = next(i for i, line in enumerate(lines, 1)
                  if len(line) > controller.max_line_chars)
        raise UserError(f"{name}: line {no} has {len(lines[no - 1])} characters, controller "
                        f"'{controller.name}' accepts {controller.max_line_chars}")
    if controller.allowed_chars:
        bad_re = re.compile("[^" + re.escape(controller.allowed_chars) + "\n]")
    else:
        bad_re = re.compile("[^\x20-\x7e\t\n]")  # printable ASCII
    m = bad_re.search(text)
    if m:
        no = text.count("\n", 0, m.start()) + 1
        line = lines[no - 1]
        if controller.allowed_chars:
            bad = sorted(set(line) - set(controller.allowed_chars))
            raise UserError(f"{name}: line {no} holds characters {''.join(bad)!r} that "
                            f"controller '{controller.name}' does not accept")
        raise UserError(f"{name}: line {no} holds non-ASCII characters")


# ----------------------------------------------------------------------------- frames
def zyx_deg(r: np.ndarray) -> np.ndarray:
    """(n, 3, 3) -> (n, 3) KUKA A, B, C (intrinsic Z-Y'-X'') in degrees (at B = +/-90
    the controller, like scipy, takes C = 0)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return Rotation.from_matrix(r).as_euler("ZYX", degrees=True)


def from_zyx_deg(abc: np.ndarray) -> np.ndarray:
    return Rotation.from_euler("ZYX", abc, degrees=True).as_matrix()


def pose_matrix(xyz: np.ndarray, rot: np.ndarray) -> np.ndarray:
    m = np.zeros((len(xyz), 4, 4))
    m[:, :3, :3] = rot
    m[:, :3, 3] = xyz
    m[:, 3, 3] = 1
    return m


def load_cell_profile(name: str) -> CellProfile:
    return load_cell(name)
