"""CAM: roughing and finishing toolpaths (spindle cutters and gouge strokes) for carving a
sculpture in the round on a robot + turntable cell or a 3-axis router.

Main entry: :func:`plan_job`. Building blocks: :func:`drop_cutter` (exact vectorised
drop-cutter), :class:`MeshQuery` (exact distance / inside / ray queries on the design).
"""

from sculptor.cam.dropcutter import Cutter, drop_cutter
from sculptor.cam.geometry import MeshQuery, load_design
from sculptor.cam.job import QUALITIES, plan_job

__all__ = ["plan_job", "drop_cutter", "Cutter", "MeshQuery", "load_design", "QUALITIES"]
