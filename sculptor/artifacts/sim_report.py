"""The simulation report (`sculptor sim`): one go / no-go with reasons and figures."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sculptor.artifacts.core import Artifact


class FailedMove(BaseModel):
    model_config = ConfigDict(extra="allow")

    pass_index: int
    move_index: int
    reason: str


class SimReport(Artifact):
    """``JOB/sim/report.json``."""

    KIND = "sim_report"
    SCHEMA_VERSION = 1

    go: bool
    reasons: list[str] = Field(default_factory=list, description="why no-go (empty: go)")
    warnings: list[str] = Field(default_factory=list, description="worth a look, not blocking")
    res_mm: float
    material: dict = Field(default_factory=dict, description="deviation figures, mm / mm3")
    robot: dict = Field(default_factory=dict, description="margins, speeds, collisions")
    cycle_time_s: float | None = None
    failed_moves: list[FailedMove] = Field(default_factory=list)
    files: dict[str, str] = Field(default_factory=dict)
