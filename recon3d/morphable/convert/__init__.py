"""Converters of user-supplied morphable models (BFM 2009, Deep3DFaceRecon's BFM front model,
BFM 2017/2019, the Surrey Face Model in eos's binary format) into recon3d's
:class:`~recon3d.morphable.model.MorphableModel`; one module per format family.

Every reader returns a model in recon3d's conventions (``docs/CONVENTIONS.md``): metres, model frame
+X the subject's left / +Y up / +Z out of the face, faces counter-clockwise seen from outside, bases
scaled by their standard deviation so that coefficients are N(0, 1). The exact file layouts these
readers expect, the unit conversions and the way missing landmarks are filled in are documented in
``docs/MODELS_USER.md``.

* :mod:`.bfm`: ``.mat`` (``scipy.io.loadmat``) and ``.h5`` (optional ``h5py``, ``recon3d[bfm]``) files.
* :mod:`.eos`: eos ``.bin`` files through a small parser of cereal's binary archive written here.
* :mod:`.side_files`: landmark mappings, contours and symmetry lists (eos's ``share/`` formats).
* :mod:`.embedding`, :mod:`.assemble`: the shared landmark-embedding heuristics and model assembly.

Nothing in a model file is executed and no pickle is ever loaded.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import AssetError
from ..model import MorphableModel
from .assemble import cylindrical_uv, mirror_symmetry
from .bfm import load_bfm2009, load_bfm2017, load_bfm_deep3d
from .eos import EosModel, EosPcaModel, load_sfm, read_eos_blendshapes, read_eos_model
from .side_files import SidePath, read_contours, read_ibug_mapping, read_symmetry

__all__ = [
    "FORMATS",
    "load_user_model",
    "load_bfm2009",
    "load_bfm_deep3d",
    "load_bfm2017",
    "load_sfm",
    "EosPcaModel",
    "EosModel",
    "read_eos_model",
    "read_eos_blendshapes",
    "read_ibug_mapping",
    "read_contours",
    "read_symmetry",
    "mirror_symmetry",
    "cylindrical_uv",
]

#: Formats understood by :func:`load_user_model` and ``python -m pipelines.convert_model``.
FORMATS = ("bfm2009", "bfm-deep3d", "bfm2017", "sfm")


def load_user_model(path: str | Path, *, format: str, landmarks: SidePath = None,
                    contours: SidePath = None, symmetry: SidePath = None,
                    expression_blendshapes: SidePath = None, name: str | None = None) -> MorphableModel:
    """Read a user-supplied model in one of :data:`FORMATS` (see the per-format readers).

    Raises:
        AssetError: unknown format, or whatever the reader raises.
    """
    kw = dict(landmarks=landmarks, contours=contours, symmetry=symmetry)
    if name:
        kw["name"] = name
    if format != "sfm" and expression_blendshapes is not None:
        raise AssetError(f"{expression_blendshapes}: expression blendshapes are only supported with --format sfm")
    if format == "bfm2009":
        return load_bfm2009(path, **kw)
    if format == "bfm-deep3d":
        return load_bfm_deep3d(path, **kw)
    if format == "bfm2017":
        return load_bfm2017(path, **kw)
    if format == "sfm":
        return load_sfm(path, expression_blendshapes=expression_blendshapes, **kw)
    raise AssetError(f"{path}: unknown model format {format!r}; expected one of {FORMATS}")
