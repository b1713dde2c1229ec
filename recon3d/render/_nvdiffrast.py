"""Optional nvdiffrast visibility backend (CUDA; ``pip install nvdiffrast``).

**Untested in this repository** (no GPU was available when it was written); written against
nvdiffrast's documented API: ``dr.RasterizeCudaContext(device)``,
``dr.rasterize(glctx, pos (B, V, 4) clip space, tri (F, 3) int32, resolution=[H, W])`` returning
``rast (B, H, W, 4)`` = (u, v, z/w, triangle_id + 1) with **row 0 at the bottom** (OpenGL).

Conversions, each in one place: pixels to OpenGL NDC with :func:`recon3d.conventions.pixel_to_ndc`,
clip ``w`` = camera depth (perspective) or 1, output rows flipped once with
:func:`recon3d.conventions.flip_map_rows`, faces cast to int32 only at the call. nvdiffrast does
not cull, so with ``cull_backfaces`` each batch element is rasterised with its front-facing
faces only and the ids are mapped back.
"""

from __future__ import annotations

import torch

from ..conventions import flip_map_rows, pixel_to_ndc
from ._backend_common import front_facing, unavailable

__all__ = ["NvdiffrastBackend", "px_to_clip"]

PIP = "pip install nvdiffrast  (needs a CUDA GPU and toolkit)"


def px_to_clip(verts_px: torch.Tensor, image_size: tuple[int, int], *, perspective: bool = True,
               near: float = 1e-3, far: float | None = None) -> torch.Tensor:
    """recon3d pixels + depth ``(B, V, 3)`` to OpenGL clip coordinates ``(B, V, 4)``.

    With ``perspective``, ``w = z`` (camera depth) and ``z_clip`` maps [near, far] to NDC [-1, 1];
    otherwise ``w = 1`` and the depth range of the input is mapped affinely to [-1, 1].

    >>> c = px_to_clip(torch.tensor([[[0.0, 0.0, 2.0]]]), (2, 4), near=1.0, far=3.0)
    >>> [round(x, 4) for x in (c[0, 0, :3] / c[0, 0, 3]).tolist()]
    [-0.75, 0.5, 0.5]
    """
    ndc = pixel_to_ndc(verts_px[..., :2], image_size)
    z = verts_px[..., 2]
    if perspective:
        f = float(z.max()) * 2.0 + 1.0 if far is None else far
        n = near
        zc = (f + n) / (f - n) * z - 2.0 * f * n / (f - n)
        return torch.stack([ndc[..., 0] * z, ndc[..., 1] * z, zc, z], dim=-1)
    lo, hi = float(z.min()), float(z.max())
    zn = (2.0 * (z - lo) / max(hi - lo, 1e-12) - 1.0) * 0.999
    return torch.stack([ndc[..., 0], ndc[..., 1], zn, torch.ones_like(z)], dim=-1)


class NvdiffrastBackend:
    """Visibility through ``nvdiffrast.torch.rasterize`` (CUDA only)."""

    name = "nvdiffrast"

    def __init__(self, device: torch.device | str = "cuda") -> None:
        try:
            import nvdiffrast.torch as dr
        except Exception as err:
            raise unavailable("nvdiffrast", PIP, err) from err
        if not torch.cuda.is_available():
            raise unavailable("nvdiffrast", PIP, RuntimeError("CUDA is not available"))
        self._dr = dr
        self._ctx = dr.RasterizeCudaContext(device=torch.device(device))

    def visibility(self, verts_px: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int], *,
                   cull_backfaces: bool = True, near: float = 1e-3, perspective: bool = True) -> torch.Tensor:
        H, W = int(image_size[0]), int(image_size[1])
        with torch.no_grad():
            v = verts_px.detach().float().contiguous()
            clip = px_to_clip(v, (H, W), perspective=perspective, near=near).contiguous()
            keep = torch.ones(v.shape[0], faces.shape[0], dtype=torch.bool, device=v.device)
            if cull_backfaces:
                keep &= front_facing(v, faces)
            if perspective:
                keep &= (v[:, faces, 2] > near).all(-1)
            outs = []
            for b in range(v.shape[0]):
                ids = keep[b].nonzero().squeeze(1)
                tri = faces[ids].to(torch.int32).contiguous()
                rast, _ = self._dr.rasterize(self._ctx, clip[b:b + 1], tri, resolution=[H, W])
                tid = rast[0, :, :, 3].round().to(torch.int64) - 1  # 0 = background
                tid = flip_map_rows(tid[None])[0]  # bottom-up -> top row first
                out = torch.full_like(tid, -1)
                m = tid >= 0
                out[m] = ids[tid[m]]
                outs.append(out)
        return torch.stack(outs)
