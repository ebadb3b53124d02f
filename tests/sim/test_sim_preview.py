"""The preview page in real headless Chromium: loads offline, renders, the slider moves."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from sim import preview

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium")
                                        else None)


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (setup.sh installs it)")
def test_preview_loads_offline_renders_and_slider_moves_robot(good_job, tmp_path):
    if preview.three_source() is None:
        pytest.fail("three.js missing: run 'cd sim/web && npm install' (setup.sh does it)")
    from playwright.sync_api import sync_playwright

    page_path = good_job[0] / "sim" / "preview.html"
    html = page_path.read_text()
    assert "http://" not in html.split("__THREE_B64__")[0][:2000]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            pg = b.new_page(viewport={"width": 1000, "height": 700})
            errors, remote = [], []
            pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.on("request", lambda r: remote.append(r.url)
                  if not r.url.startswith(("file:", "blob:", "data:")) else None)
            pg.goto(page_path.as_uri())
            pg.wait_for_function("window.__sim && window.__sim.ready === true", timeout=60000)
            assert pg.evaluate("window.__sim.rendered") > 0
            shot = tmp_path / "shot.png"
            pg.screenshot(path=str(shot))
            img = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
            assert len(np.unique(img // 16, axis=0)) > 20  # not blank: many colours
            tip0 = pg.evaluate("window.__sim.tip")
            last = int(pg.evaluate("document.getElementById('slider').max"))
            assert last > 10
            pg.eval_on_selector("#slider", "(e, v) => { e.value = v; "
                                "e.dispatchEvent(new Event('input')); }", str(last // 2))
            assert pg.evaluate("window.__sim.frame") == last // 2
            tip1 = pg.evaluate("window.__sim.tip")
            assert np.linalg.norm(np.subtract(tip1, tip0)) > 5.0  # the robot moved
            pg.click("#play")
            pg.wait_for_timeout(500)
            assert pg.evaluate("window.__sim.frame") != last // 2
        finally:
            b.close()
    assert errors == []
    assert remote == []
