"""All-poses-at-once refinement (sculptor.scan.multiview) on the real bunny range scans."""

import numpy as np
from scipy.spatial.transform import Rotation

from sculptor.scan.evaluate import read_stanford_conf, relative_pose_errors
from sculptor.scan.io import load_geometry
from sculptor.scan.multiview import refine_multiview, view_samples

NAMES = ["bun000", "bun045", "bun315", "chin"]


def test_refinement_recovers_stanford_alignment_from_mm_errors(bunny_dir):
    gt = read_stanford_conf(bunny_dir / "bun.conf", scale=1000.0)
    scans = [load_geometry(bunny_dir / f"{n}.ply").points * 1000.0 for n in NAMES]
    true = [gt[f"{n}.ply"] for n in NAMES]
    rng = np.random.default_rng(3)
    poses = []
    for k, t in enumerate(true):
        d = np.eye(4)
        if k:  # scan 0 is the reference
            d[:3, :3] = Rotation.from_rotvec(rng.normal(size=3) * np.radians(0.6)).as_matrix()
            d[:3, 3] = rng.normal(size=3)
        poses.append(d @ t)
    rot0, disp0 = relative_pose_errors(poses, true, scans)
    assert disp0.max() > 1.0  # the start is well outside the target
    fine = max(float(np.ptp(p, axis=0).max()) for p in scans) / 65 / 3
    views = {k: view_samples(p, fine, seed=k) for k, p in enumerate(scans)}
    fit, rmse = refine_multiview(poses, views, 0, fine)
    rot, disp = relative_pose_errors(poses, true, scans)
    assert rot.max() < 0.3 and disp.max() < 0.3, (rot, disp)
    assert np.allclose(poses[0], true[0])  # the reference scan stays put
    assert min(fit) > 0.3 and max(rmse) < 0.3  # scan noise, mm
