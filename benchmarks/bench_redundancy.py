"""Redundancy solver time for a ~100k-point gouge job in the demo cell.

Synthetic gouge strokes (50 mm at 0.5 mm steps) over the sides and top of a
220 x 220 x 450 mm block on the turntable of kuka-kr6-r900-turntable; the solver searches
turntable offset (+/-30 deg at 5 deg) x tilt (-4, 0, 4 deg) per point with 8 IK branches,
then densifies to a 0.01 mm chord error.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_redundancy.py [--points 100000]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from sculptor.robot.solver import solve_program  # noqa: E402
from sculptor.robot.synthetic import block_strokes  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--cell", default="kuka-kr6-r900-turntable")
    args = ap.parse_args()
    n_strokes = max(1, round(args.points / 103))
    tp = block_strokes(n_strokes=n_strokes, seed=0)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    prog = solve_program(tp, args.cell, progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(f"{tp.n_moves} toolpath points ({n_strokes} strokes) in {args.cell}: "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU -> {tp.n_moves / wall:,.0f} points/s; "
          f"valid ratio {prog.valid_ratio:.5f}; {prog.n} program points after "
          f"densification; max chord error {prog.max_chord_error_mm:.4f} mm; "
          f"failures: {sum(f['count'] for f in prog.failures)}")


if __name__ == "__main__":
    main()
