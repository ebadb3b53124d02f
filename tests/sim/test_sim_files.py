"""Output files of the simulator: ordinary permissions (0644 under a 022 umask)."""

from __future__ import annotations

import os
import stat

from sculptor.artifacts.core import atomic_output_dir, atomic_write_text


def test_atomic_writes_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_output_dir(tmp_path / "out") as out:
            atomic_write_text(out / "report.md", "x")
        os.umask(0o027)
        atomic_write_text(tmp_path / "group.txt", "y")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out" / "report.md").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "group.txt").stat().st_mode) == 0o640


def test_sim_outputs_are_readable_by_others(good_job):
    d, _ = good_job
    for f in (d / "sim").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) & 0o044 == 0o044, f
