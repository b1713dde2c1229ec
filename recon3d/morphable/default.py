"""recon3d's own default 3D morphable model, ``assets/recon3d_face_v1.npz``.

Built from 300-W photos with MediaPipe Face Mesh by ``python -m pipelines.build_model`` (see
``docs/MODEL.md`` and ``assets/README.md``): 7,257 vertices, metres, model frame +X subject's left,
+Y up, +Z out of the face.
"""

from __future__ import annotations

import torch

from ..assets import resolve
from .model import MorphableModel, load_model

__all__ = ["DEFAULT_MODEL_NAME", "load_default_model"]

#: File name of the default model inside the asset folder.
DEFAULT_MODEL_NAME = "recon3d_face_v1.npz"


def load_default_model(device: torch.device | str | None = None) -> MorphableModel:
    """Load the default model (resolved by :func:`recon3d.assets.resolve`, sha256-checked).

    Raises:
        AssetError: the file is missing, corrupt or of an unsupported format version.
    """
    return load_model(resolve(DEFAULT_MODEL_NAME), device=device)
