"""The embedded default corpus: procedural figurative wooden carvings in one carver's style.

``make_piece(seed, kind)`` -> (watertight trimesh in mm, parameters);
``generate_corpus(n, seed, out, res=64, kinds=KINDS)`` -> the dataset manifest;
``default_dataset_path()`` -> the dataset shipped in the package.
"""

from sculptor.corpus.figures import KINDS, STYLE
from sculptor.corpus.generate import (
    HEIGHT_RANGE_MM,
    PieceSdf,
    default_dataset_path,
    footprint_mm2,
    generate_corpus,
    make_piece,
    make_piece_sdf,
    piece_kind,
    piece_seed,
    sdf_grid,
    validate_piece,
)

__all__ = ["KINDS", "STYLE", "HEIGHT_RANGE_MM", "PieceSdf", "default_dataset_path",
           "footprint_mm2", "generate_corpus", "make_piece", "make_piece_sdf", "piece_kind",
           "piece_seed", "sdf_grid", "validate_piece"]
