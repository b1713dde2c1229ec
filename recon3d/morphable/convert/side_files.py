"""Readers of the side files that come with a model (eos's ``share/`` folder, or your own in the same
formats), for every converter in :mod:`recon3d.morphable.convert`:

* ``ibug_to_X.txt``: TOML ``[landmark_mappings]`` table, 1-based iBUG index = 0-based vertex id.
* ``X_contours.json``: ``{"model_contour": {"right_contour": [...], "left_contour": [...]}}``.
* ``X_symmetry.txt``: one 1-based vertex id per line (``#`` comments), the mirror of each vertex.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np

from ...errors import AssetError

__all__ = ["SidePath", "read_ibug_mapping", "read_contours", "read_symmetry", "read_side_files"]

#: The type of an optional side-file argument of the converters.
SidePath = str | Path | None


def _existing(path: str | Path, what: str, how: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise AssetError(f"{path}: {what} not found. {how}")
    return path


def read_ibug_mapping(path: str | Path) -> dict[int, int]:
    """Read an eos landmark mapping (``ibug_to_sfm.txt`` style, TOML).

    Returns:
        ``{ibug_index_0_based: vertex_id_0_based}`` for the landmarks the file defines.

    Raises:
        AssetError: missing file, not TOML, no ``[landmark_mappings]`` table, bad entries.
    """
    how = "Use eos's share/ibug_to_*.txt files or write one in the same TOML format (docs/MODELS_USER.md)."
    path = _existing(path, "landmark mapping file", how)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise AssetError(f"{path}: not a TOML landmark mapping ({e}). {how}") from None
    table = doc.get("landmark_mappings")
    if not isinstance(table, dict) or not table:
        raise AssetError(f"{path}: expected a non-empty [landmark_mappings] table of 'IBUG_1BASED = VERTEX'. {how}")
    out = {}
    for k, v in table.items():
        try:
            i = int(k) - 1
        except ValueError:
            raise AssetError(f"{path}: landmark key {k!r} is not an iBUG number 1..68. {how}") from None
        if not 0 <= i < 68 or not isinstance(v, int) or v < 0:
            raise AssetError(f"{path}: bad mapping {k} = {v!r} (iBUG 1..68 = vertex id >= 0). {how}")
        out[i] = int(v)
    return out


def read_contours(path: str | Path) -> tuple[list[int], list[int]]:
    """Read an eos contour file: ``{"model_contour": {"right_contour": [...], "left_contour": [...]}}``.

    Returns:
        ``(right, left)`` 0-based vertex ids (the subject's right / left side).
    """
    how = "Use eos's share/*_contours.json files or the same JSON layout (docs/MODELS_USER.md)."
    path = _existing(path, "contour file", how)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        mc = doc["model_contour"]
        right = [int(i) for i in mc["right_contour"]]
        left = [int(i) for i in mc["left_contour"]]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise AssetError(f"{path}: not an eos contour JSON ({e.__class__.__name__}: {e}). {how}") from None
    if len(right) < 2 or len(left) < 2 or min(right + left) < 0:
        raise AssetError(f"{path}: each contour needs at least 2 vertex ids >= 0. {how}")
    return right, left


def read_symmetry(path: str | Path) -> np.ndarray:
    """Read an eos symmetry file: one 1-based vertex id per line (the mirror of line i's vertex).

    Returns:
        ``(N,)`` int64, 0-based; ``N`` may be smaller than the model's vertex count (eos's file covers
        only the 845 reference vertices of the SFM).
    """
    how = "Use eos's share/sfm_reference_symmetry.txt or the same layout (docs/MODELS_USER.md)."
    path = _existing(path, "symmetry file", how)
    try:
        a = np.loadtxt(path, comments="#", dtype=np.float64, ndmin=1)
    except ValueError as e:
        raise AssetError(f"{path}: not a list of vertex ids ({e}). {how}") from None
    if a.ndim != 1 or a.size == 0 or np.any(a != np.round(a)) or a.min() < 1:
        raise AssetError(f"{path}: expected one 1-based integer vertex id per line. {how}")
    return a.astype(np.int64) - 1


def read_side_files(contours: SidePath, symmetry: SidePath) -> dict:
    """The optional contour and symmetry files of a model, as the keyword arguments
    ``contours=..., symmetry=...`` of :func:`recon3d.morphable.convert.assemble.assemble` (None where
    not given)."""
    return {
        "contours": None if contours is None else read_contours(contours),
        "symmetry": None if symmetry is None else read_symmetry(symmetry),
    }
