"""Helpers shared by the mesh file formats of :mod:`recon3d.io.mesh` (atomic writes, PNG bytes)."""

from __future__ import annotations

import io as _io
from pathlib import Path

import numpy as np

from ..errors import Recon3DError
from .atomic import atomic_file
from .image import PNG_COMPRESS_LEVEL

#: File formats :func:`~recon3d.io.mesh.save_mesh` and :func:`~recon3d.io.mesh.load_mesh` understand
#: (the file suffix without the dot).
MESH_FORMATS = ("obj", "ply", "glb")


class MeshFileError(Recon3DError, ValueError):
    """A mesh file is corrupt, truncated or not in a format recon3d can read or write."""


def _format_of(path: Path, format: str | None) -> str:
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt not in MESH_FORMATS:
        raise MeshFileError(
            f"{path}: unknown mesh format {fmt!r}; expected one of {', '.join(MESH_FORMATS)} "
            "(from the file suffix or format=)"
        )
    return fmt


def _atomic(path: Path, mode: str = "wb"):
    """Open a temporary file next to ``path`` and rename it over ``path`` on success (umask mode)."""
    return atomic_file(path, mode)


def _texture_to_uint8(texture: np.ndarray) -> np.ndarray:
    return (np.clip(texture, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _colors_to_uint8(c: np.ndarray) -> np.ndarray:
    return (np.clip(c, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _png_bytes(texture: np.ndarray) -> bytes:
    from PIL import Image

    buf = _io.BytesIO()
    Image.fromarray(_texture_to_uint8(texture), "RGB").save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def _block(key: str, rows: np.ndarray, fmt: str, row_fmt: str | None = None) -> str:
    """``rows (N, k)`` as N lines ``key v1 ... vk`` (one C-level format call; %.9g round-trips float32)."""
    if len(rows) == 0:
        return ""
    row_fmt = row_fmt or " ".join([fmt] * rows.shape[1])
    return (f"{key} {row_fmt}\n" * len(rows)) % tuple(rows.ravel().tolist())
