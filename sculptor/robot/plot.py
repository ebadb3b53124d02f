"""A PNG of a solved program: every joint over the path against its limits."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from sculptor.artifacts.core import atomic_write_bytes
from sculptor.artifacts.program import RobotProgram
from sculptor.profiles import load_robot


def _trace(ax, x: np.ndarray, y: np.ndarray, color: str, buckets: int = 2000) -> None:
    """A line, or for long programs its min-max envelope per bucket (the figure is ~900
    pixels wide: every extreme stays visible, drawing stays fast)."""
    if len(y) <= 2 * buckets:
        ax.plot(x, y, lw=0.8, color=color)
        return
    edges = np.linspace(0, len(y), buckets + 1).astype(int)
    lo = np.minimum.reduceat(y, edges[:-1])
    hi = np.maximum.reduceat(y, edges[:-1])
    ax.fill_between(x[edges[:-1]], lo, hi, color=color, lw=0.8, step="post")


def plot_program(program: RobotProgram, path: Path, a5_margin_deg: float = 10.0) -> Path | None:
    """Write ``path`` (PNG): axes 1-6 and the turntable (deg) over the program points, the
    joint limits and the wrist margin shaded, failing points in red. None for cnc3."""
    if not program.robot or program.n == 0:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    robot = load_robot(program.robot)
    q = np.degrees(program.joints_rad)
    bad = ~program.valid.astype(bool)
    x = np.arange(program.n)
    fig, axes = plt.subplots(7, 1, figsize=(10, 11), sharex=True)
    for j, ax in enumerate(axes[:6]):
        jt = robot.joints[j]
        _trace(ax, x, q[:, j], "tab:blue")
        ax.axhspan(jt.max_deg, max(jt.max_deg, q[:, j].max()) + 10, color="tab:red", alpha=0.15)
        ax.axhspan(min(jt.min_deg, q[:, j].min()) - 10, jt.min_deg, color="tab:red", alpha=0.15)
        if j == 4:
            ax.axhspan(-a5_margin_deg, a5_margin_deg, color="tab:orange", alpha=0.25)
        if bad.any():
            ax.plot(x[bad], q[bad, j], ".", color="tab:red", ms=3)
        lo, hi = q[:, j].min(), q[:, j].max()
        pad = max(5.0, 0.1 * (hi - lo))
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_ylabel(f"{jt.name} (deg)")
    _trace(axes[6], x, np.degrees(program.turntable_rad), "tab:green")
    axes[6].set_ylabel("table (deg)")
    axes[6].set_xlabel("program point")
    fig.suptitle(f"{program.robot} in {program.cell}: {program.n} points, valid ratio "
                 f"{program.valid_ratio:.4f}, max chord error "
                 f"{program.max_chord_error_mm:.4f} mm (red: limits / failures, orange: "
                 "wrist margin)", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


__all__ = ["plot_program", "math"]
