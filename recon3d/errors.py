"""Exception types raised by recon3d.

Every error recon3d raises on purpose derives from :class:`Recon3DError`, so callers (and the
pipelines, which map it to exit code 1) can catch one type. Messages name the function or file,
what was expected and what was found.
"""

from __future__ import annotations

__all__ = [
    "Recon3DError",
    "ShapeError",
    "AssetError",
    "NoFaceError",
    "ImageError",
    "BackendUnavailableError",
]


class Recon3DError(Exception):
    """Base class of all recon3d errors."""


class ShapeError(Recon3DError, ValueError):
    """A tensor has the wrong shape, dtype or device."""


class AssetError(Recon3DError, FileNotFoundError):
    """A model or data file is missing, corrupt, of the wrong kind or of an unknown format version.

    The message says how to obtain or convert the file.
    """


class NoFaceError(Recon3DError):
    """No face was found in an image."""


class ImageError(Recon3DError, ValueError):
    """An image file cannot be read: missing, empty, truncated, not an image, or too large."""


class BackendUnavailableError(Recon3DError, ImportError):
    """An optional backend (nvdiffrast, PyTorch3D, Open3D, face-alignment, ...) is not installed or
    cannot run here. The message says how to install it."""
