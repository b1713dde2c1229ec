"""Rasteriser backends: only the (non-differentiable) visibility pass is backend-specific.

Every backend maps projected vertices ``verts_px (B, V, 3)`` (x, y pixels, depth) to a
``(B, H, W)`` int64 triangle-id map (-1 for background) in recon3d's conventions (row 0 on
top, pixel centres at integers). The differentiable barycentrics are then recomputed by
:func:`recon3d.render.rasterizer.fragments_from_tri_id`, identically for all backends, so
backends agree on gradients wherever they agree on visibility.

* ``"torch"``: pure PyTorch, CPU and CUDA, the reference (:func:`~recon3d.render.rasterizer.visibility_torch`).
* ``"nvdiffrast"``: CUDA only, ``pip install nvdiffrast`` (see :mod:`recon3d.render._nvdiffrast`).
* ``"pytorch3d"``: ``pip install easypytorch3d`` (see :mod:`recon3d.render._pytorch3d`).

Optional packages are imported only inside their modules, when the backend is requested.
"""

from __future__ import annotations

import logging
from typing import Protocol

import torch

from ._nvdiffrast import NvdiffrastBackend
from ._pytorch3d import PyTorch3DBackend
from .rasterizer import visibility_torch

__all__ = ["Backend", "TorchBackend", "get_backend", "BACKENDS"]

log = logging.getLogger(__name__)

BACKENDS = ("torch", "nvdiffrast", "pytorch3d")


class Backend(Protocol):
    name: str

    def visibility(self, verts_px: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int], *,
                   cull_backfaces: bool, near: float, perspective: bool) -> torch.Tensor:
        """``(B, H, W)`` int64 visible triangle ids (-1 for background)."""
        ...


class TorchBackend:
    """The pure-PyTorch reference backend (CPU and CUDA)."""

    name = "torch"

    def __init__(self, max_candidates: int = 1 << 20) -> None:
        self.max_candidates = int(max_candidates)

    def visibility(self, verts_px: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int], *,
                   cull_backfaces: bool = True, near: float = 1e-3, perspective: bool = True) -> torch.Tensor:
        return visibility_torch(verts_px, faces, image_size, cull_backfaces=cull_backfaces, near=near,
                                perspective=perspective, max_candidates=self.max_candidates)


_TORCH = TorchBackend()


def get_backend(name: str | Backend = "torch") -> Backend:
    """Return the rasteriser backend called ``name`` (or ``name`` itself if it is a backend object).

    Args:
        name: ``"torch"``, ``"nvdiffrast"`` or ``"pytorch3d"``.

    Raises:
        BackendUnavailableError: the backend's package is not installed (the message has the
            pip command) or cannot run here.
        ValueError: unknown name.

    >>> get_backend("torch").name
    'torch'
    """
    if not isinstance(name, str):
        if hasattr(name, "visibility"):
            return name
        raise ValueError(f"get_backend(): expected a backend name or object, got {type(name).__name__}")
    if name == "torch":
        return _TORCH
    if name == "nvdiffrast":
        return NvdiffrastBackend()
    if name == "pytorch3d":
        return PyTorch3DBackend()
    raise ValueError(f"get_backend(): unknown backend {name!r}, expected one of {BACKENDS}")
