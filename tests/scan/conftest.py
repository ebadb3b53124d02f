from pathlib import Path

import pytest

from sculptor.scan.evaluate import random_motion  # noqa: F401  (the tests import it from here)

DATA = Path(__file__).resolve().parents[1] / "data"
# the real Stanford Bunny scans ship with the package (the demo registers them too)
BUNNY = Path(__file__).resolve().parents[2] / "sculptor" / "data" / "scans" / "stanford-bunny"
MESHES = DATA / "meshes"
BUNNY_SCANS = ["bun000", "bun045", "bun090", "bun180", "bun270", "bun315", "chin"]


@pytest.fixture(scope="session")
def bunny_dir() -> Path:
    return BUNNY


@pytest.fixture(scope="session")
def meshes_dir() -> Path:
    return MESHES

