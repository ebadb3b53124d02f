from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
BUNNY = DATA / "bunny"
MESHES = DATA / "meshes"
BUNNY_SCANS = ["bun000", "bun045", "bun090", "bun180", "bun270", "bun315", "chin"]


@pytest.fixture(scope="session")
def bunny_dir() -> Path:
    return BUNNY


@pytest.fixture(scope="session")
def meshes_dir() -> Path:
    return MESHES


def random_motion(rng: np.random.Generator, max_shift: float) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    m = np.eye(4)
    m[:3, :3] = Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
    m[:3, 3] = rng.uniform(-max_shift, max_shift, 3)
    return m
