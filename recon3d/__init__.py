"""recon3d: single-photo 3D face reconstruction and editing, CPU first, offline."""

from __future__ import annotations

__version__ = "0.1.0"

from .camera import Camera, OrthoCamera  # noqa: E402
from .errors import AssetError, NoFaceError, Recon3DError, ShapeError  # noqa: E402

__all__ = ["__version__", "Camera", "OrthoCamera", "Recon3DError", "ShapeError", "AssetError", "NoFaceError"]
