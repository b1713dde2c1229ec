"""recon3d.texture: UV unwrapping of a photo and completion of the partial UV texture.

Pipeline (thesis ch. 4): :func:`uv_raster` the model's UV layout once, :func:`unwrap_texture` the
photo with the fitted mesh, optionally :func:`remove_shading`, then :func:`complete_texture`
(mirror + Poisson blending into the fitted 3DMM albedo baked with :func:`bake_vertex_attr_to_uv`).
"""

from ..ops.poisson import poisson_blend
from .complete import CompletionResult, complete_texture, mirror_texture
from .unwrap import UnwrapResult, UVRaster, bake_vertex_attr_to_uv, remove_shading, unwrap_texture, uv_raster

__all__ = [
    "uv_raster",
    "UVRaster",
    "unwrap_texture",
    "UnwrapResult",
    "remove_shading",
    "complete_texture",
    "CompletionResult",
    "mirror_texture",
    "poisson_blend",
    "bake_vertex_attr_to_uv",
]

from .regions import uv_region_masks  # noqa: E402

__all__ = [*__all__, "uv_region_masks"]
