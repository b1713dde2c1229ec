"""Deprecated alias of :mod:`recon3d.render.rasterizer` (kept so that
``from recon3d.render.rasterize import fragments_from_tri_id, project_to_px`` keeps working).

Import from :mod:`recon3d.render` instead. Note that ``recon3d.render.rasterize`` itself is the
function :func:`recon3d.render.rasterize`, not this module.
"""

from .raster import rasterize, rasterize_px  # noqa: F401
from .rasterizer import _bary_at_pixels, fragments_from_tri_id, project_to_px, visibility_torch  # noqa: F401

__all__ = ["fragments_from_tri_id", "project_to_px", "rasterize", "rasterize_px", "visibility_torch"]
