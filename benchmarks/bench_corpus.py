"""Benchmark: `sculptor corpus` speed, and the renderer on a 100k-triangle mesh.

    .venv/bin/python benchmarks/bench_corpus.py [--n 200] [--res 64] [--workers 2]

Target (issue 4): 200 pieces at 64^3 in under 3 minutes on 2 cores; a 100k-triangle
mesh renders in about a second.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import trimesh


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    from sculptor.corpus import generate_corpus
    from sculptor.render import render_mesh

    nef = Path(__file__).resolve().parents[1].parent / "shared/data/meshes/nefertiti.obj"
    if not nef.is_file():
        nef = Path("/work/shared/data/meshes/nefertiti.obj")
    if nef.is_file():
        m = trimesh.load(nef, force="mesh")
        render_mesh(m, "front", (64, 64))
        for view in ("front", "three_quarter"):
            t = time.perf_counter()
            render_mesh(m, view, (512, 512))
            print(f"render {len(m.faces)} triangles {view} 512x512: "
                  f"{time.perf_counter() - t:.2f} s")

    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        man = generate_corpus(a.n, a.seed, Path(d) / "corpus", res=a.res, progress=False,
                              workers=a.workers)
        dt = time.perf_counter() - t
        size = sum(p.stat().st_size for p in (Path(d) / "corpus").rglob("*") if p.is_file())
    print(f"corpus n={a.n} res={a.res} workers={a.workers}: {dt:.1f} s "
          f"({dt / a.n:.2f} s/piece, {len(man.split('held_out'))} held out, "
          f"{size / 1e6:.1f} MB with meshes and gallery)")


if __name__ == "__main__":
    main()
