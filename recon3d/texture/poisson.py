"""Deprecated alias of :mod:`recon3d.ops.poisson`, kept for one release."""

from __future__ import annotations

import warnings

from ..ops.poisson import poisson_blend

warnings.warn("recon3d.texture.poisson is deprecated: use recon3d.ops.poisson", DeprecationWarning, stacklevel=2)

__all__ = ["poisson_blend"]
