"""recon3d.render: a pure-PyTorch differentiable renderer with nvdiffrast-style primitives.

``rasterize`` -> ``interpolate`` -> ``texture`` -> shading -> ``antialias``, all batch-first,
CPU and CUDA, differentiable w.r.t. vertex positions and attributes. ``render_mesh`` /
``MeshRenderer`` chain them. Conventions: :mod:`recon3d.conventions`.
"""

from . import rasterize as _rasterize_alias_module  # noqa: F401  (see rasterize.py; rebound below)
from .antialiasing import EdgeTopology, antialias, edge_topology
from .backends import get_backend
from .fragments import Fragments
from .interpolation import interpolate
from .raster import rasterize, rasterize_px
from .rasterizer import fragments_from_tri_id, project_to_px
from .renderer import MeshRenderer, RenderOutput, render_mesh
from .shading import ambient_light, sh_basis, sh_shading
from .texturing import texture

__all__ = [
    "rasterize",
    "rasterize_px",
    "interpolate",
    "texture",
    "antialias",
    "sh_basis",
    "sh_shading",
    "render_mesh",
    "MeshRenderer",
    "Fragments",
    "RenderOutput",
    "get_backend",
    "ambient_light",
    "edge_topology",
    "EdgeTopology",
    "project_to_px",
    "fragments_from_tri_id",
]
