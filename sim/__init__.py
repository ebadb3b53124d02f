"""The simulator: carve a job virtually, replay the robot, write the go / no-go report and
the offline preview (``run_simulation``); ``sim.controller`` holds the virtual controller.

Heavy modules (torch, open3d) load only when a simulation runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from sim.run import run_simulation  # noqa: F401

__all__ = ["run_simulation"]


def __getattr__(name: str) -> Any:
    if name == "run_simulation":
        from sim.run import run_simulation

        return run_simulation
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
