"""UV-space region masks (skin, eyes, brows, lips, nose) of a morphable model.

The model stores one region label per vertex (``MorphableModel.region_labels``, names in
``recon3d.morphable.REGION_NAMES``); this module turns them into texel masks at any resolution,
for region-weighted losses and blending.
"""

from __future__ import annotations

import torch

from ..morphable.model import REGION_NAMES, MorphableModel
from .unwrap import bake_vertex_attr_to_uv, uv_raster

__all__ = ["uv_region_masks"]


def uv_region_masks(model: MorphableModel, resolution: int = 256) -> dict[str, torch.Tensor]:
    """``{region name: (Ht, Wt) bool}`` texel masks of the model's UV layout.

    A texel belongs to the region whose one-hot label, interpolated from the triangle's vertices,
    is largest there; texels outside the layout belong to none. ``"layout"`` is the whole layout.

    >>> from recon3d.morphable.toy import make_toy_model
    >>> masks = uv_region_masks(make_toy_model(), 64)
    >>> sorted(masks)[:3], masks["skin"].dtype
    (['brows', 'eyes', 'layout'], torch.bool)
    """
    uvr = uv_raster(model, resolution=resolution)
    labels = model.region_labels.long().clamp(0, len(REGION_NAMES) - 1)
    onehot = torch.nn.functional.one_hot(labels, len(REGION_NAMES)).to(model.mean.dtype)[None]
    soft = bake_vertex_attr_to_uv(onehot, model.faces, uvr)[0]  # (Ht, Wt, R)
    best = soft.argmax(-1)
    inside = uvr.mask if uvr.mask.dim() == 2 else uvr.mask[0]
    out = {"layout": inside.clone()}
    for k, name in enumerate(REGION_NAMES):
        if name == "other":
            continue
        out[name] = inside & (best == k)
    return out
