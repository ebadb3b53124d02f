"""Roughing keeps the tool body (shank, holder, spindle) out of the wood it leaves and its
rapids out of the wood, checked with the simulator's own carver and capsules on a real
scan (tests/data/nefertiti-4k.ply, 220 mm) in the turntable cell."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sculptor.artifacts.toolpath import MoveKind
from sculptor.cam.geometry import MeshQuery, load_design, parse_stock
from sculptor.cam.reach import ReachCheck
from sculptor.cam.rough import Roughing, body_floor_wood, body_sections, side_setup
from sculptor.cam.stock import StockModel
from sculptor.profiles import load_cell, load_tool

DESIGN = Path(__file__).parents[1] / "data" / "nefertiti-4k.ply"
STOCK = "120x175x230"
CELL = "kuka-kr6-r900-turntable"


def test_body_sections_are_the_simulators_capsules():
    from sim.replay import tool_capsules

    tool = load_tool("flat-10mm")
    flange_from_tcp = tool.flange_from_tcp.matrix()
    world_from_flange = np.linalg.inv(flange_from_tcp)[None]  # the TCP at the origin
    caps = tool_capsules(tool, world_from_flange)
    got = sorted((round(-float(c.b[0, 2]), 6), c.radius) for c in caps)
    assert got == sorted((z, r) for z, r in body_sections(tool))
    assert body_sections(tool) == [(30.0, 5.0), (90.0, 20.0), (150.0, 40.0)]


def test_body_floor_wood_is_the_capsule_end():
    """One column of wood 100 mm up: the tip may go no lower than where the round end of
    a capsule meets it: exact over the shank, never lower (blocks for wide capsules only
    raise it, by at most a block's diagonal), nothing beyond the spindle."""
    tool = load_tool("flat-10mm")
    top = np.full((161, 161), -np.inf)
    top[80, 80] = 100.0
    b = body_floor_wood(top, tool, 1.0, 0.0)

    def need(d, grow=0.0):
        return max((100.0 - z + math.sqrt((r + grow) ** 2 - d * d)
                    for z, r in body_sections(tool) if d <= r + grow), default=-np.inf)

    for d in (0, 3, 5):
        assert b[80, 80 + d] == pytest.approx(need(d))  # the shank: 75 mm at the axis
    for d in (8, 15, 25, 39, 45):
        assert need(d) - 1e-9 <= b[80, 80 + d] <= need(d, 10.0), d
    assert b[80, 80 + 60] == -np.inf


@pytest.fixture(scope="module")
def rough_job():
    """Two side setups (level, then tilted) planned on the stock model, as plan_job does."""
    mesh = load_design(DESIGN)
    cell = load_cell(CELL)
    stock = parse_stock(STOCK, None, cell.default_stock_mm)
    query = MeshQuery(mesh)
    model = StockModel(stock, query, 6.0)
    tool = load_tool("flat-10mm")
    rough = Roughing(query, model, tool, allowance_mm=0.9, grid_mm=4.0, simplify_mm=0.5,
                     reach=ReachCheck(cell, tool, margin_deg=5.0, table_window_deg=0.0),
                     stepover_frac=0.8)
    v0 = model.volume_mm3
    passes = [rough.plan_setup(side_setup(math.radians(a), math.radians(t)), i)
              for i, (a, t) in enumerate(((0.0, 0.0), (180.0, 45.0)))]
    return mesh, stock, tool, passes, v0, model.volume_mm3


def test_rough_body_and_rapids_clear_of_the_wood_left(rough_job):
    """Each roughing pass carved in order by the simulator's dexel engine (2 mm): no
    rapid removes wood, and no shank, holder or spindle capsule of any move meets the wood
    left after the pass (sim.replay's test: distance < radius - MATERIAL_CLEARANCE_MM).
    Before the body check (2026-12-02) the two passes had 1,134 such moves: holder 567,
    shank 565, rapids 2 (the tool went its stick-out less 10 mm into its own column, next
    to taller ones, and the 6 mm stock model lost partly cut voxels)."""
    from sim import dexel
    from sim.carve import stock_grid
    from sim.replay import MATERIAL_CLEARANCE_MM, MaterialField, _sample, tool_capsules
    from types import SimpleNamespace

    from sculptor.artifacts.toolpath import StockSpec

    mesh, stock, tool, passes, v0, v1 = rough_job
    size = [float(x) for x in np.ptp(np.asarray(stock.bounds, float), axis=0)]
    grid = stock_grid(SimpleNamespace(stock=StockSpec(kind="box", size_mm=size)), 2.0, None)
    flange_from_tcp = tool.flange_from_tcp.matrix()
    hits = {}
    for p in passes:
        assert p.n_moves > 100
        rem = dexel.carve_pass_dexel(grid, p.position_mm, p.kind, dexel.pass_axis(p.tool_frame),
                                     tool, None)
        rapid = (p.kind == int(MoveKind.RAPID)) & (rem > 4 * 2.0 ** 3)  # as sim.run
        hits[(p.name, "rapid through wood")] = int(rapid.sum())
        field = MaterialField.from_occupancy(grid.as_numpy(), grid.origin, grid.res)
        wp_from_tcp = np.tile(np.eye(4), (p.n_moves, 1, 1))
        wp_from_tcp[:, :3, :3] = p.tool_frame
        wp_from_tcp[:, :3, 3] = p.position_mm
        for c in tool_capsules(tool, wp_from_tcp @ np.linalg.inv(flange_from_tcp)):
            h = (field.at(_sample(c)) < c.radius - MATERIAL_CLEARANCE_MM).any(1)
            hits[(p.name, c.part)] = int(h.sum())
    assert sum(hits.values()) == 0, hits
    # and the roughing still takes most of the wood these two sides reach
    assert v0 - v1 > 0.45 * v0, (v0, v1)
