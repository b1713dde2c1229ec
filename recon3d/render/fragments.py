"""The :class:`Fragments` produced by :func:`recon3d.render.rasterize`."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

__all__ = ["Fragments"]


@dataclass(frozen=True)
class Fragments:
    """Per-pixel rasterisation result (all images top row first, pixel centres at integers).

    Attributes:
        tri_id: ``(B, H, W)`` int64 index into ``faces`` of the visible triangle, ``-1`` for
            background. Not differentiable (visibility).
        bary: ``(B, H, W, 3)`` barycentrics of the pixel centre in the visible triangle,
            perspective-correct for :func:`~recon3d.render.rasterize` and screen-space linear for
            :func:`~recon3d.render.rasterize_px`. Differentiable w.r.t. the vertex positions.
            Zero in the background.
        depth: ``(B, H, W)`` camera-frame z (metres) of the visible surface at the pixel centre
            (for :func:`~recon3d.render.rasterize_px`: the linearly interpolated third coordinate).
            **0 in the background.** Differentiable.
        verts_px: ``(B, V, 3)`` projected vertices: x, y in pixels and camera z (metres); the
            tensor :func:`~recon3d.render.antialias` needs. Differentiable.
        pix_index: ``(N,)`` int64 flat index ``b*H*W + row*W + col`` of each covered pixel.
        pix_face: ``(N,)`` int64 triangle id of each covered pixel.
        pix_bary: ``(N, 3)`` barycentrics of each covered pixel (the packed form of ``bary``).
        image_size: ``(H, W)``.
        perspective: True when ``bary`` is perspective-correct.
    """

    tri_id: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor
    verts_px: torch.Tensor
    pix_index: torch.Tensor
    pix_face: torch.Tensor
    pix_bary: torch.Tensor
    image_size: tuple[int, int]
    perspective: bool = True

    @property
    def batch_size(self) -> int:
        return self.tri_id.shape[0]

    @property
    def mask(self) -> torch.Tensor:
        """``(B, H, W, 1)`` float hard coverage (1 where a triangle is visible)."""
        return (self.tri_id >= 0).to(self.bary.dtype)[..., None]

    def to(self, device: torch.device | str) -> "Fragments":
        return replace(
            self,
            tri_id=self.tri_id.to(device),
            bary=self.bary.to(device),
            depth=self.depth.to(device),
            verts_px=self.verts_px.to(device),
            pix_index=self.pix_index.to(device),
            pix_face=self.pix_face.to(device),
            pix_bary=self.pix_bary.to(device),
        )

    def detach(self) -> "Fragments":
        return replace(
            self,
            bary=self.bary.detach(),
            depth=self.depth.detach(),
            verts_px=self.verts_px.detach(),
            pix_bary=self.pix_bary.detach(),
        )
