"""Small figures of a morphable model (mean and +-2 sigma modes) for docs/MODEL.md.

The modes are rendered with ``recon3d.render.render_mesh``; the albedo/region panels are drawn with a
matplotlib painter's algorithm. matplotlib's pyplot (and its Agg backend) is set up inside the functions.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from matplotlib.collections import PolyCollection

from ...camera import intrinsics_from_fov, pose_angles_to_matrix, transform_points
from ...conventions import frontal_rotation
from ...ops.geometry import vertex_normals
from ...render import render_mesh

log = logging.getLogger(__name__)

__all__ = ["draw_mesh", "modes_figure", "albedo_figure"]


def draw_mesh(ax, verts: np.ndarray, faces: np.ndarray, colours: np.ndarray | None = None, yaw_deg: float = 0.0) -> None:
    """Lambert-shaded orthographic view of model-frame ``verts (V,3)`` on a matplotlib axis (painter's algorithm)."""
    a = np.radians(yaw_deg)
    Ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    R = frontal_rotation(torch.float64).numpy() @ Ry  # camera (x right, y down, z forward)
    v = verts @ R.T
    tri = v[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    facing = n[:, 2] < 0  # towards the camera (camera looks along +z)
    light = np.array([0.3, -0.4, -1.0])
    light /= np.linalg.norm(light)
    shade = np.clip(n @ light, 0, 1) * 0.8 + 0.2
    base = np.full((len(faces), 3), 0.8) if colours is None else colours[faces].mean(1)
    col = np.clip(base * shade[:, None], 0, 1)
    order = np.argsort(-tri[:, :, 2].mean(1))  # far first
    order = order[facing[order]]
    pc = PolyCollection(tri[order][:, :, :2], facecolors=col[order], edgecolors="none", antialiased=False)
    ax.add_collection(pc)
    ax.set_xlim(v[:, 0].min() - 0.005, v[:, 0].max() + 0.005)
    ax.set_ylim(v[:, 1].max() + 0.005, v[:, 1].min() - 0.005)  # y down
    ax.set_aspect("equal")
    ax.axis("off")


def render_views(model, verts_model, *, size: int = 160, yaw_deg: float = 25.0, albedo: bool = False):
    """Render model-frame vertices ``(N, V, 3)`` with recon3d's own renderer (grey or mean albedo,
    SH-lit, perspective camera at 0.7 m). Returns ``(N, size, size, 3)`` numpy images."""
    v = torch.as_tensor(verts_model, dtype=torch.float32)
    N = v.shape[0]
    R = pose_angles_to_matrix(torch.tensor([[math.radians(yaw_deg), 0.0, 0.0]])).expand(N, 3, 3)
    t = torch.tensor([[0.0, 0.0, 0.7]]).expand(N, 3)
    vc = transform_points(v - v.mean(1, keepdim=True), R, t)
    K = intrinsics_from_fov(13.0, (size, size), N)
    col = model.albedo_mean[None].expand(N, -1, -1) if albedo else torch.full_like(vc, 0.7)
    light = torch.zeros(N, 9, 3)
    light[:, 0] = 0.55 * math.sqrt(4 * math.pi) / math.pi
    light[:, 1] = -0.35  # from above (sign per recon3d.render.shading's basis)
    light[:, 2] = 0.45  # from the front
    out = render_mesh(vc, model.faces, K, (size, size), vert_colors=col, light=light,
                      normals=vertex_normals(vc, model.faces), background=1.0)
    return out.image.clamp(0, 1).numpy()


def modes_figure(model, path, n_modes: int = 3, sigma: float = 2.0, dpi: int = 90) -> str:
    """Save a grid: rows = first identity and expression modes, columns = -sigma, mean, +sigma,
    rendered with ``recon3d.render.render_mesh``. Returns the method used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean = model.mean.numpy()
    rows = [("id", k, model.shape_basis[k].numpy()) for k in range(n_modes)]
    rows += [("expr", k, model.expr_basis[k].numpy()) for k in range(n_modes)]
    verts = np.stack([mean + s * b for _, _, b in rows for s in (-sigma, 0.0, sigma)])
    imgs = render_views(model, verts)
    fig, axes = plt.subplots(len(rows), 3, figsize=(4.2, 1.5 * len(rows)))
    for r, (kind, k, _) in enumerate(rows):
        for c, s in enumerate((-sigma, 0.0, sigma)):
            ax = axes[r, c]
            ax.imshow(imgs[r * 3 + c])
            ax.set_xticks([])
            ax.set_yticks([])
            for sp in ax.spines.values():
                sp.set_visible(False)
            if r == 0:
                ax.set_title("mean" if s == 0 else f"{s:+.0f}σ", fontsize=8)
        axes[r, 0].text(-0.1, 0.5, f"{kind} {k}", transform=axes[r, 0].transAxes, rotation=90, va="center", ha="right", fontsize=8)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return "recon3d.render.render_mesh (perspective, SH-lit, yaw 25 deg)"


def albedo_figure(model, path, dpi: int = 60) -> None:
    """Save the albedo mean and +-2 sigma of the first two albedo modes (frontal), and the region labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    faces, mean = model.faces.numpy(), model.mean.numpy()
    am = model.albedo_mean.numpy()
    panels = [("albedo mean", am)]
    for k in range(2):
        b = model.albedo_basis[k].numpy()
        panels += [(f"alb {k} -2σ", np.clip(am - 2 * b, 0, 1)), (f"alb {k} +2σ", np.clip(am + 2 * b, 0, 1))]
    pal = np.array([[0.2, 0.2, 0.2], [0.9, 0.75, 0.6], [0.2, 0.4, 1.0], [0.4, 0.25, 0.1], [0.9, 0.1, 0.2], [0.2, 0.8, 0.3]])
    panels.append(("regions", pal[model.region_labels.numpy().astype(int)]))
    fig, axes = plt.subplots(1, len(panels), figsize=(1.4 * len(panels), 1.8))
    for ax, (title, col) in zip(axes, panels, strict=False):
        draw_mesh(ax, mean, faces, colours=col)
        ax.set_title(title, fontsize=7)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
