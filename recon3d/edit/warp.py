"""Deprecated alias: the piecewise-affine warp lives in :mod:`recon3d.ops.warp` (:func:`triangulate`,
:class:`WarpResult`), :mod:`recon3d.render.warp` (:func:`warp_triangles`) and :mod:`recon3d.ops.sampling`
(:func:`bilinear_sample`). Import from there; this module goes away in recon3d 0.3."""

from __future__ import annotations

import warnings

from ..ops.sampling import bilinear_sample
from ..ops.warp import WarpResult, triangulate
from ..render.warp import warp_triangles

__all__ = ["WarpResult", "warp_triangles", "triangulate", "bilinear_sample"]

warnings.warn("recon3d.edit.warp is deprecated; import from recon3d.ops.warp, recon3d.render.warp and "
              "recon3d.ops.sampling", DeprecationWarning, stacklevel=2)
