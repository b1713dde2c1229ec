"""Helpers shared by the optional visibility backends (no optional package is imported here)."""

from __future__ import annotations

import torch

from ..errors import BackendUnavailableError

__all__ = ["front_facing", "unavailable"]


def unavailable(name: str, pip: str, err: Exception | None = None) -> BackendUnavailableError:
    """The error raised when backend ``name`` cannot be used; its message has the pip command."""
    msg = f"the {name!r} render backend is not available: {err}. Install it with `{pip}` or use backend='torch'"
    return BackendUnavailableError(msg)


def front_facing(verts_px: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``(B, F)`` bool: negative signed pixel area (front-facing in recon3d's convention)."""
    tri = verts_px[:, faces][..., :2]
    e1 = tri[:, :, 1] - tri[:, :, 0]
    e2 = tri[:, :, 2] - tri[:, :, 0]
    return (e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]) < 0
