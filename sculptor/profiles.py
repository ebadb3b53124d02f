"""Robot, tool, controller and cell profiles: TOML data files validated by pydantic.

Profiles are definitions (static data), kept apart from state (joint values, mounted tool).
They are found, in order, in the directories named by ``$SCULPTOR_PROFILES``
(``os.pathsep``-separated, each with ``robots/ tools/ controllers/ cells/``) and in the
``robot_profiles`` data package that ships with sculptor (works from a source checkout
and from an installed wheel). A name may also be a path to a ``.toml`` file.

Units in the files carry their unit in the key (``_mm``, ``_deg``, ``_deg_s``); the models
expose radians through helper properties where kinematics needs them.
Frame convention: tools reach along +Z of the TCP frame (see robot_profiles/README.md).
"""

from __future__ import annotations

import math
import os
import tomllib
from importlib import resources
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from scipy.spatial.transform import Rotation

from sculptor.errors import UserError

ProfileKind = Literal["robots", "tools", "controllers", "cells"]
KINDS: tuple[ProfileKind, ...] = ("robots", "tools", "controllers", "cells")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pose(_Strict):
    """A rigid transform given as translation (mm) and fixed-axis XYZ roll-pitch-yaw (deg)."""

    xyz_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rpy_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix (mm)."""
        m = np.eye(4)
        m[:3, :3] = Rotation.from_euler("xyz", self.rpy_deg, degrees=True).as_matrix()
        m[:3, 3] = self.xyz_mm
        return m


# ------------------------------------------------------------------------------ robots
class Joint(_Strict):
    name: str
    min_deg: float
    max_deg: float
    max_speed_deg_s: float = Field(gt=0)
    max_accel_deg_s2: float = Field(default=600.0, gt=0)
    sign: Literal[-1, 1] = Field(
        default=1, description="controller axis = sign * (kinematic angle) + offset"
    )
    offset_deg: float = 0.0

    @model_validator(mode="after")
    def _range(self):
        if not self.min_deg < self.max_deg:
            raise ValueError(f"joint {self.name}: min_deg must be below max_deg")
        return self


class OpwParameters(_Strict):
    """Ortho-parallel basis + spherical wrist parameters (Brandstoetter et al. 2014), mm."""

    a1_mm: float
    a2_mm: float
    b_mm: float
    c1_mm: float
    c2_mm: float
    c3_mm: float
    c4_mm: float


class DhRow(_Strict):
    """Standard Denavit-Hartenberg row (UR style): d, a in mm, alpha in degrees."""

    d_mm: float
    a_mm: float
    alpha_deg: float


class RobotProfile(_Strict):
    name: str
    manufacturer: str
    model: str
    kinematics: Literal["opw", "dh"]
    opw: OpwParameters | None = None
    dh: list[DhRow] | None = None
    joints: list[Joint] = Field(min_length=6, max_length=6)
    reach_mm: float = Field(gt=0)
    payload_kg: float = Field(gt=0)
    source: str = Field(description="where the dimensions come from (datasheet, URDF)")
    default_controller: str | None = None

    @model_validator(mode="after")
    def _kin(self):
        if self.kinematics == "opw" and self.opw is None:
            raise ValueError("kinematics = 'opw' needs an [opw] table")
        if self.kinematics == "dh" and (self.dh is None or len(self.dh) != 6):
            raise ValueError("kinematics = 'dh' needs six [[dh]] rows")
        return self

    @property
    def limits_rad(self) -> np.ndarray:
        """(6, 2) joint limits in the controller's convention, radians."""
        return np.radians([[j.min_deg, j.max_deg] for j in self.joints])

    @property
    def max_speed_rad_s(self) -> np.ndarray:
        return np.radians([j.max_speed_deg_s for j in self.joints])

    @property
    def max_accel_rad_s2(self) -> np.ndarray:
        return np.radians([j.max_accel_deg_s2 for j in self.joints])


# ------------------------------------------------------------------------------ tools
class Holder(_Strict):
    diameter_mm: float = Field(gt=0)
    length_mm: float = Field(gt=0)


class _ToolBase(_Strict):
    name: str
    description: str = ""
    flange_from_tcp: Pose = Field(description="TCP frame in the flange frame; tool reaches along +Z")
    length_mm: float = Field(gt=0, description="stick-out from holder to tip")
    shank_diameter_mm: float = Field(gt=0)
    holder: Holder
    feed_mm_s: float = Field(gt=0)
    plunge_feed_mm_s: float = Field(gt=0)


class RotaryTool(_ToolBase):
    kind: Literal["ball", "flat", "bull"]
    diameter_mm: float = Field(gt=0)
    corner_radius_mm: float = Field(ge=0)
    flute_length_mm: float = Field(gt=0)
    spindle_rpm: float = Field(gt=0)
    max_stepdown_mm: float = Field(gt=0)

    @model_validator(mode="after")
    def _corner(self):
        r = self.diameter_mm / 2
        if self.kind == "ball" and not math.isclose(self.corner_radius_mm, r):
            raise ValueError("a ball tool's corner_radius_mm must equal diameter_mm / 2")
        if self.kind == "flat" and self.corner_radius_mm != 0:
            raise ValueError("a flat tool's corner_radius_mm must be 0")
        if self.kind == "bull" and not 0 < self.corner_radius_mm < r:
            raise ValueError("a bull tool's corner_radius_mm must lie between 0 and diameter/2")
        return self

    @property
    def radius_mm(self) -> float:
        return self.diameter_mm / 2


class GougeTool(_ToolBase):
    """A carving gouge held by the robot: no spindle; the edge is an arc in the tool's
    x-y... see robot_profiles/README.md for the edge geometry in the TCP frame."""

    kind: Literal["gouge"]
    sweep: int = Field(ge=1, le=11, description="Sheffield/Swiss sweep number")
    width_mm: float = Field(gt=0, description="chord of the cutting edge")
    edge_arc_radius_mm: float = Field(gt=0)
    bevel_angle_deg: float = Field(gt=0, lt=60)
    rake_angle_deg: float = Field(gt=0, lt=90, description="angle of the blade to the surface")
    max_chip_depth_mm: float = Field(gt=0)
    max_stroke_length_mm: float = Field(gt=0)
    min_stroke_length_mm: float = Field(gt=0)

    @model_validator(mode="after")
    def _arc(self):
        if self.edge_arc_radius_mm < self.width_mm / 2:
            raise ValueError("edge_arc_radius_mm must be at least width_mm / 2")
        return self

    @property
    def arc_depth_mm(self) -> float:
        """Depth of the edge arc below its chord (how deep one cut can be at most)."""
        r, w = self.edge_arc_radius_mm, self.width_mm / 2
        return r - math.sqrt(r * r - w * w)


ToolProfile = Annotated[Union[RotaryTool, GougeTool], Field(discriminator="kind")]


GOUGE_FREE_BLADE_MM = 30.0  # the last part of a gouge blade lies along the cut: it cuts, not collides
SPINDLE_RADIUS_MM = 40.0    # a spindle motor between flange and holder, as a capsule


@dataclass(frozen=True)
class BodySection:
    """One part of a tool's body as a capsule about the tool axis, between ``near_mm`` and
    ``far_mm`` from the TCP back towards the flange (the TCP frame's -Z)."""

    name: str
    near_mm: float
    far_mm: float
    radius_mm: float


def capsule_step_mm(radius_mm: float) -> float:
    """Spacing of the samples along a capsule's axis for collision checks: at most its
    radius, 2..10 mm (the simulator's and the CAM's checks sample alike)."""
    return max(2.0, min(10.0, float(radius_mm)))


def tool_body_sections(tool: RotaryTool | GougeTool) -> list[BodySection]:
    """The body of ``tool`` that must not meet wood or the design: the shank above the
    flutes (or above the gouge's free blade, ``GOUGE_FREE_BLADE_MM``), the holder, and,
    where the holder ends before the flange, a spindle (rotary) or adapter (gouge) of at
    least ``SPINDLE_RADIUS_MM``. The one definition used by the CAM and the simulator."""
    tcp_z = float(np.linalg.norm(tool.flange_from_tcp.xyz_mm))
    holder_near = min(float(tool.length_mm), tcp_z)
    holder_far = min(holder_near + float(tool.holder.length_mm), tcp_z)
    cut = float(tool.flute_length_mm) if isinstance(tool, RotaryTool) else GOUGE_FREE_BLADE_MM
    rh = tool.holder.diameter_mm / 2
    out = []
    if holder_near > cut:
        out.append(BodySection("shank", cut, holder_near, tool.shank_diameter_mm / 2))
    out.append(BodySection("holder", holder_near, holder_far, rh))
    if tcp_z - holder_far > 1.0:
        out.append(BodySection("spindle" if isinstance(tool, RotaryTool) else "adapter",
                               holder_far, tcp_z, max(rh, SPINDLE_RADIUS_MM)))
    return out


# ------------------------------------------------------------------------------ controllers
class ControllerProfile(_Strict):
    name: str
    kind: Literal["serial", "file"]
    protocol: Literal["grbl", "marlin", "ack", "krl", "rapid", "urscript"]
    dialect: Literal["krl", "rapid", "urscript", "gcode-joint", "gcode-3axis"]
    baud: int | None = Field(default=None, gt=0)
    rx_buffer_bytes: int | None = Field(default=None, gt=0)
    max_line_chars: int = Field(default=80, gt=0)
    allowed_chars: str = Field(
        default="", description="characters a program line may hold (empty: printable ASCII)"
    )
    file_extension: str | None = None
    max_program_lines: int | None = Field(default=None, gt=0)
    status_query_s: float = Field(default=0.2, gt=0)

    @model_validator(mode="after")
    def _serial(self):
        if self.kind == "serial" and (self.baud is None or self.rx_buffer_bytes is None):
            raise ValueError("a serial controller needs baud and rx_buffer_bytes")
        return self


# ------------------------------------------------------------------------------ cells
class Turntable(_Strict):
    world_from_turntable: Pose = Field(description="turntable top centre, z = axis, mm")
    min_deg: float = -1.0e6
    max_deg: float = 1.0e6
    max_speed_deg_s: float = Field(gt=0)
    max_accel_deg_s2: float = Field(default=180.0, gt=0)
    radius_mm: float = Field(gt=0)
    sign: Literal[-1, 1] = 1


class CellProfile(_Strict):
    name: str
    machine: Literal["robot", "cnc3"] = "robot"
    robot: str | None = None
    controller: str
    world_from_robot_base: Pose = Pose()
    turntable: Turntable | None = None
    world_from_workpiece: Pose | None = Field(
        default=None, description="fixed workpiece frame when there is no turntable"
    )
    table_z_mm: float = 0.0
    default_stock_mm: tuple[float, float, float] = (220.0, 220.0, 450.0)
    default_tool: str = "gouge-12mm"
    default_rough_tool: str | None = None
    travel_mm: tuple[float, float, float] | None = Field(
        default=None, description="x, y, z travel for a CNC router"
    )

    @model_validator(mode="after")
    def _where(self):
        if self.machine == "robot" and not self.robot:
            raise ValueError("a robot cell needs 'robot'")
        if self.turntable is None and self.world_from_workpiece is None:
            raise ValueError("a cell needs a turntable or a world_from_workpiece pose")
        return self

    def world_from_workpiece_at(self, turntable_rad: float = 0.0) -> np.ndarray:
        """4x4 world_from_workpiece with the turntable at ``turntable_rad``."""
        if self.turntable is None:
            return self.world_from_workpiece.matrix()  # type: ignore[union-attr]
        rz = np.eye(4)
        c, s = math.cos(turntable_rad), math.sin(turntable_rad)
        rz[:2, :2] = [[c, -s], [s, c]]
        return self.turntable.world_from_turntable.matrix() @ rz


_MODELS = {"robots": RobotProfile, "controllers": ControllerProfile, "cells": CellProfile}


# ------------------------------------------------------------------------------ loading
def profile_dirs() -> list[Path]:
    """Directories searched for profiles, highest priority first."""
    dirs = [Path(p) for p in os.environ.get("SCULPTOR_PROFILES", "").split(os.pathsep) if p]
    dirs.append(Path(str(resources.files("robot_profiles"))))
    return dirs


def _find(kind: ProfileKind, name: str) -> Path:
    if name.endswith(".toml"):
        p = Path(name)
        if not p.is_file():
            raise UserError(f"profile file not found: {name}")
        return p
    for d in profile_dirs():
        p = d / kind / f"{name}.toml"
        if p.is_file():
            return p
    known = ", ".join(list_profiles(kind)) or "none"
    raise UserError(f"unknown {kind[:-1]} '{name}'; known: {known} (sculptor profiles list)")


def list_profiles(kind: ProfileKind) -> list[str]:
    names: set[str] = set()
    for d in profile_dirs():
        if (d / kind).is_dir():
            names.update(p.stem for p in (d / kind).glob("*.toml"))
    return sorted(names)


def _validate(kind: ProfileKind, data: dict, where: Path):
    try:
        if kind == "tools":
            from pydantic import TypeAdapter

            return TypeAdapter(ToolProfile).validate_python(data)
        return _MODELS[kind].model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"] if not str(x) in ("gouge", "ball", "flat", "bull"))
        raise UserError(f"profile {where}: field '{loc}': {first['msg']}")


def load_raw(kind: ProfileKind, name: str) -> tuple[dict, Path]:
    path = _find(kind, name)
    try:
        return tomllib.loads(path.read_text("utf-8")), path
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"profile {path} is not valid TOML: {e}")


def load_profile(kind: ProfileKind, name: str):
    data, path = load_raw(kind, name)
    return _validate(kind, data, path)


def load_robot(name: str) -> RobotProfile:
    return load_profile("robots", name)


def load_tool(name: str) -> RotaryTool | GougeTool:
    return load_profile("tools", name)


def load_controller(name: str) -> ControllerProfile:
    return load_profile("controllers", name)


def load_cell(name: str) -> CellProfile:
    return load_profile("cells", name)


def find_any(name: str) -> tuple[ProfileKind, object]:
    """Look a name up in every kind (for `sculptor profiles show NAME`)."""
    hits = [k for k in KINDS if name in list_profiles(k)]
    if name.endswith(".toml"):
        raise UserError("give a profile name, not a file, to 'profiles show'")
    if not hits:
        raise UserError(f"no profile named '{name}'; run 'sculptor profiles list'")
    return hits[0], load_profile(hits[0], name)
