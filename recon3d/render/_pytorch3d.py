"""Optional PyTorch3D visibility backend (``pip install easypytorch3d``).

PyTorch3D is imported only when the backend is constructed. Its screen convention differs from
recon3d's: in PyTorch3D's NDC +X points left and +Y up, the shorter image side spans [-1, 1],
and output row 0 / column 0 is the top-left pixel. :func:`px_to_pytorch3d_ndc` converts
recon3d pixel coordinates (x right, y down, centres at integers) in one place.

Culling: PyTorch3D's own ``cull_backfaces`` uses its world-space convention, so instead each
batch element is rasterised with only its front-facing faces (a heterogeneous ``Meshes``
batch) and the packed face ids are mapped back to indices into ``faces``.
"""

from __future__ import annotations

import torch

from ._backend_common import front_facing, unavailable

__all__ = ["PyTorch3DBackend", "px_to_pytorch3d_ndc"]

PIP = "pip install easypytorch3d  (CPU wheels exist for some torch versions only)"


def px_to_pytorch3d_ndc(verts_px: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """recon3d pixels (x right, y down) + depth to PyTorch3D NDC (+X left, +Y up) + depth.

    Pixel column j's centre is at ``x = W/S - (2j + 1)/S`` with ``S = min(H, W)``.

    >>> px_to_pytorch3d_ndc(torch.tensor([[[0.0, 0.0, 2.0], [3.0, 1.0, 2.0]]]), (2, 4))[0].tolist()
    [[1.5, 0.5, 2.0], [-1.5, -0.5, 2.0]]
    """
    H, W = image_size
    S = float(min(H, W))
    x = (W - 2.0 * verts_px[..., 0] - 1.0) / S
    y = (H - 2.0 * verts_px[..., 1] - 1.0) / S
    return torch.stack([x, y, verts_px[..., 2]], dim=-1)


class PyTorch3DBackend:
    """Visibility through ``pytorch3d.renderer.mesh.rasterize_meshes`` (CPU or CUDA)."""

    name = "pytorch3d"

    def __init__(self, bin_size: int | None = None, max_faces_per_bin: int | None = None) -> None:
        try:
            from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
            from pytorch3d.structures import Meshes
        except Exception as err:  # ImportError, or a broken binary extension
            raise unavailable("pytorch3d", PIP, err) from err
        self._rasterize_meshes = rasterize_meshes
        self._Meshes = Meshes
        self.bin_size = bin_size
        self.max_faces_per_bin = max_faces_per_bin

    def visibility(self, verts_px: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int], *,
                   cull_backfaces: bool = True, near: float = 1e-3, perspective: bool = True) -> torch.Tensor:
        H, W = int(image_size[0]), int(image_size[1])
        with torch.no_grad():
            v = verts_px.detach().float()
            ndc = px_to_pytorch3d_ndc(v, (H, W))
            keep = torch.ones(v.shape[0], faces.shape[0], dtype=torch.bool, device=v.device)
            if cull_backfaces:
                keep &= front_facing(v, faces)
            if perspective:
                keep &= (v[:, faces, 2] > near).all(-1)
            ids = [k.nonzero().squeeze(1) for k in keep]
            meshes = self._Meshes(verts=list(ndc), faces=[faces[i] for i in ids])
            pix_to_face, _, _, _ = self._rasterize_meshes(
                meshes, image_size=(H, W), blur_radius=0.0, faces_per_pixel=1, bin_size=self.bin_size,
                max_faces_per_bin=self.max_faces_per_bin, perspective_correct=False, cull_backfaces=False)
            p2f = pix_to_face[..., 0]  # (B, H, W) packed ids, -1 background
            packed_to_face = torch.cat(ids) if ids else torch.zeros(0, dtype=torch.int64, device=v.device)
            out = torch.full_like(p2f, -1)
            m = p2f >= 0
            out[m] = packed_to_face[p2f[m]]
        return out.to(torch.int64)
