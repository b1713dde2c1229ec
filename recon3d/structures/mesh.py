"""The in-memory triangle mesh: :class:`Mesh`, a frozen dataclass of numpy arrays in recon3d's
conventions (see ``docs/CONVENTIONS.md`` and :mod:`recon3d.conventions`):

* ``verts (V, 3) float32`` in the frame of the caller (usually the model frame, metres),
* ``faces (F, 3) int64``, 0-based, counter-clockwise seen from outside,
* ``uv (Vt, 2) float32`` with the OBJ convention (origin bottom-left, v up) and ``uv_faces (F, 3)``
  indexing it (a separate UV topology, so seams need no duplicated vertices),
* ``texture (Ht, Wt, 3) float32`` RGB in [0, 1], row 0 at the top,
* ``vert_colors (V, 3) float32`` in [0, 1] and ``normals (V, 3) float32``.

Reading and writing mesh files is :mod:`recon3d.io.mesh`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import ShapeError

__all__ = ["Mesh"]


def _as_array(x: Any, name: str, dtype: Any, cols: int | None) -> np.ndarray | None:
    if x is None:
        return None
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if cols is not None and (a.ndim != 2 or a.shape[1] != cols):
        raise ShapeError(f"Mesh(): {name} must be (N, {cols}), got {tuple(a.shape)}")
    if np.issubdtype(np.dtype(dtype), np.floating):
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise ShapeError(f"Mesh(): {name} must be numeric, got {a.dtype}")
        a = a.astype(dtype, copy=False)
    else:
        if not np.issubdtype(a.dtype, np.integer):
            raise ShapeError(f"Mesh(): {name} must be an integer array, got {a.dtype}")
        a = a.astype(dtype, copy=False)
    return np.ascontiguousarray(a)


@dataclass(frozen=True, eq=False)
class Mesh:
    """A triangle mesh with optional texture coordinates, texture, vertex colours and normals.

    Arrays are converted (torch tensors too) to the dtypes below on construction and validated.

    Attributes:
        verts: ``(V, 3)`` float32 positions (usually model frame, metres).
        faces: ``(F, 3)`` int64, 0-based, CCW seen from outside.
        uv: ``(Vt, 2)`` float32 texture coordinates, origin bottom-left, v up (OBJ), or None.
        uv_faces: ``(F, 3)`` int64 indices into ``uv``; defaults to ``faces`` when ``uv`` is given
            (then ``Vt`` must equal ``V``).
        texture: ``(Ht, Wt, 3)`` float32 RGB in [0, 1], row 0 at the top, or None.
        vert_colors: ``(V, 3)`` float32 RGB in [0, 1], or None.
        normals: ``(V, 3)`` float32 per-vertex normals, or None.

    Raises:
        ShapeError: on wrong shapes, dtypes or out-of-range indices.

    >>> m = Mesh(verts=np.zeros((3, 3)), faces=[[0, 1, 2]])
    >>> m.verts.dtype, m.faces.dtype, m.n_verts, m.n_faces
    (dtype('float32'), dtype('int64'), 3, 1)
    """

    verts: np.ndarray
    faces: np.ndarray
    uv: np.ndarray | None = None
    uv_faces: np.ndarray | None = None
    texture: np.ndarray | None = field(default=None, repr=False)
    vert_colors: np.ndarray | None = None
    normals: np.ndarray | None = None

    def __post_init__(self) -> None:
        verts = _as_array(self.verts, "verts", np.float32, 3)
        faces = _as_array(self.faces, "faces", np.int64, 3)
        uv = _as_array(self.uv, "uv", np.float32, 2)
        uv_faces = _as_array(self.uv_faces, "uv_faces", np.int64, 3)
        vert_colors = _as_array(self.vert_colors, "vert_colors", np.float32, 3)
        normals = _as_array(self.normals, "normals", np.float32, 3)
        texture = _as_array(self.texture, "texture", np.float32, None)
        V = verts.shape[0]
        if faces.size and (faces.min() < 0 or faces.max() >= V):
            raise ShapeError(f"Mesh(): faces index out of range [0, {V}), got [{faces.min()}, {faces.max()}]")
        if uv_faces is not None and uv is None:
            raise ShapeError("Mesh(): uv_faces given without uv")
        if uv is not None:
            if uv_faces is None:
                if uv.shape[0] != V:
                    raise ShapeError(
                        f"Mesh(): uv without uv_faces must have one row per vertex ({V}), got {uv.shape[0]}"
                    )
                uv_faces = faces
            if uv_faces.shape != faces.shape:
                raise ShapeError(f"Mesh(): uv_faces must be {faces.shape}, got {uv_faces.shape}")
            if uv_faces.size and (uv_faces.min() < 0 or uv_faces.max() >= uv.shape[0]):
                raise ShapeError(
                    f"Mesh(): uv_faces index out of range [0, {uv.shape[0]}), "
                    f"got [{uv_faces.min()}, {uv_faces.max()}]"
                )
        for name, a in (("vert_colors", vert_colors), ("normals", normals)):
            if a is not None and a.shape[0] != V:
                raise ShapeError(f"Mesh(): {name} must be ({V}, 3), got {tuple(a.shape)}")
        if texture is not None and (texture.ndim != 3 or texture.shape[2] != 3):
            raise ShapeError(f"Mesh(): texture must be (Ht, Wt, 3) RGB, got {tuple(texture.shape)}")
        for name, a in (
            ("verts", verts), ("faces", faces), ("uv", uv), ("uv_faces", uv_faces),
            ("texture", texture), ("vert_colors", vert_colors), ("normals", normals),
        ):
            object.__setattr__(self, name, a)

    @property
    def n_verts(self) -> int:
        """Number of vertices ``V``."""
        return int(self.verts.shape[0])

    @property
    def n_faces(self) -> int:
        """Number of faces ``F``."""
        return int(self.faces.shape[0])

    @property
    def has_seams(self) -> bool:
        """True when the UV topology differs from the vertex topology (UV seams)."""
        return self.uv is not None and not (
            self.uv.shape[0] == self.verts.shape[0] and np.array_equal(self.uv_faces, self.faces)
        )

    def replace(self, **changes: Any) -> Mesh:
        """A copy with some fields replaced (``dataclasses.replace``)."""
        return replace(self, **changes)
