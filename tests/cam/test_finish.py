"""Ball / bull finishing on real geometry (tests/data/nefertiti-4k.ply, 220 mm): the
all-rows-at-once raster assembly gives the moves of the straightforward row-by-row
loop (the reference below, as the raster was first written), on every band."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh
from shapely.geometry import LineString

from sculptor.artifacts.toolpath import MoveKind
from sculptor.cam import MeshQuery
from sculptor.cam.bands import Bands
from sculptor.cam.finish import CLEAR_MM, band_cl, ball_stepover, convex_curvature, \
    finish_passes
from sculptor.profiles import load_tool

DESIGN = Path(__file__).parents[1] / "data" / "nefertiti-4k.ply"


@pytest.fixture(scope="module")
def query():
    return MeshQuery(trimesh.load(DESIGN, force="mesh"))


def reference_band(us, vs, cl, keep, sample_mm, line_mm, simplify_mm, clear_mm):
    """Row by row: (positions (m, 3) band frame, kinds (m,), lines)."""
    top = float(np.nanmax(np.where(np.isfinite(cl), cl, np.nan))) + 20.0
    pos, kind, prev, nlines = [], [], None, 0
    for j in range(len(vs)):
        row = keep[j]
        if not row.any():
            continue
        e = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(int), [0]])))
        runs = list(zip(e[::2], e[1::2]))
        if nlines % 2:
            runs = [(b, a) for a, b in reversed(runs)]
        nlines += 1
        for a, b in runs:
            idx = np.arange(a, b) if a < b else np.arange(a - 1, b - 1, -1)
            if len(idx) < 2:
                continue
            uh = np.asarray(LineString(np.column_stack([us[idx], cl[j, idx]]))
                            .simplify(simplify_mm).coords)
            pts = np.column_stack([uh[:, 0], np.full(len(uh), vs[j]), uh[:, 1]])
            s = pts[0]
            if prev is None:
                pos.append([[s[0], s[1], top]])
                kind.append([MoveKind.RAPID])
            else:
                ju = np.clip(np.rint((np.linspace(prev[0], s[0], 20) - us[0]) / sample_mm)
                             .astype(int), 0, len(us) - 1)
                jv = np.clip(np.rint((np.linspace(prev[1], s[1], 20) - vs[0]) / line_mm)
                             .astype(int), 0, len(vs) - 1)
                lift = np.max(np.where(np.isfinite(cl[jv, ju]), cl[jv, ju], -np.inf))
                th = min(max(lift, prev[2], s[2]) + clear_mm, top)
                pos.append([[prev[0], prev[1], th], [s[0], s[1], th]])
                kind.append([MoveKind.RAPID] * 2)
            pos += [s[None], pts[1:]]
            kind += [[MoveKind.PLUNGE], [MoveKind.CUT] * (len(pts) - 1)]
            prev = pts[-1]
    pos.append([[prev[0], prev[1], top]])
    kind.append([MoveKind.RETRACT])
    return np.concatenate(pos), np.concatenate(kind), nlines


@pytest.mark.parametrize("tool_name,sample_mm,scallop_mm", [
    ("ball-6mm", 0.5, 0.3),
    ("bull-12mm", 1.0, 0.5),
])
def test_raster_matches_the_row_by_row_reference(query, tool_name, sample_mm, scallop_mm):
    tool = load_tool(tool_name)
    bands = Bands(8)
    passes, rep = finish_passes(query, bands, tool, scallop_mm=scallop_mm,
                                sample_mm=sample_mm, simplify_mm=0.01)
    assert [p.name for p in passes] == [f"finish-{n}" for n in bands.names]
    w = ball_stepover(tool.corner_radius_mm, scallop_mm, convex_curvature(query.mesh))
    assert rep["stepover_mm"] == pytest.approx(w)
    for k, p in enumerate(passes):
        line = w * (0.6 if k < bands.n_side else 0.8)
        R, us, vs, cl, keep, _ = band_cl(query, bands, k, tool, sample_mm, line)
        pos, kind, nlines = reference_band(us, vs, cl, keep, sample_mm, line, 0.01,
                                           CLEAR_MM + tool.radius_mm)
        assert p.stats["lines"] == nlines > 10
        np.testing.assert_array_equal(p.kind, kind)
        np.testing.assert_allclose(p.position_mm, pos @ R, atol=1e-9)
        feed = np.where(kind == MoveKind.PLUNGE, tool.plunge_feed_mm_s, tool.feed_mm_s)
        np.testing.assert_array_equal(p.feed_mm_s, feed)
        np.testing.assert_allclose(p.tool_frame[:, :, 2], np.broadcast_to(
            -bands.direction(k), (p.n_moves, 3)), atol=1e-12)
        assert (p.turntable_rad == bands.turntable(k)).all()
        # the cuts lie on the kept CL points (ends of each simplified run)
        cut = pos[kind == MoveKind.CUT]
        ju = np.rint((cut[:, 0] - us[0]) / sample_mm).astype(int)
        jv = np.rint((cut[:, 1] - vs[0]) / line).astype(int)
        assert keep[jv, ju].all()
        np.testing.assert_allclose(cut[:, 2], cl[jv, ju], atol=1e-9)
