"""Benchmark of recon3d.texture: UV raster, unwrap, mirror, Poisson blending, full completion.

Usage::

    python bench/texture.py [--sizes 512 1024] [--repeat 5] [--model MODEL.npz] [--threads 2]

Times are medians of ``--repeat`` runs (seconds, wall clock). The mesh is the toy model (or a
``.npz`` model), rendered with a smooth test texture at 35 degrees of yaw into a 512² photo.
``poisson`` is one ``poisson_blend`` on a face-like layout (an ellipse covering ~70 % of the map)
with ~45 % of the texels unknown, smooth data plus noise; ``complete`` is the whole
``complete_texture`` (mirror + two Poisson passes, as in the thesis) of the unwrapped photo.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import numpy as np
import torch

from recon3d.camera import intrinsics_from_fov, pose_angles_to_matrix, transform_points
from recon3d.ops.poisson import poisson_blend
from recon3d.render import interpolate, rasterize
from recon3d.render import texture as sample_texture
from recon3d.texture import (
    bake_vertex_attr_to_uv,
    complete_texture,
    mirror_texture,
    unwrap_texture,
)
from recon3d.texture import unwrap as _unwrap


def _median_time(fn, repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _poisson_case(n: int):
    yy, xx = np.mgrid[0:n, 0:n] / n
    layout = ((xx - 0.5) / 0.48) ** 2 + ((yy - 0.5) / 0.45) ** 2 < 1
    known = layout & (xx > 0.62 + 0.1 * np.sin(yy * 12))
    rng = np.random.default_rng(0)
    base = np.stack([0.6 + 0.2 * np.sin(5 * xx), 0.45 + 0.1 * np.cos(4 * yy), 0.4 + 0.1 * xx], -1)
    target = (base + 0.05).astype(np.float32)  # "albedo": smooth, offset
    source = (base + 0.03 * rng.standard_normal(base.shape)).astype(np.float32)  # "photo": detailed
    return target, source, layout & ~known, layout


def _bench_size(n: int, model, img, verts, K, repeat: int) -> tuple:
    def cold():
        _unwrap._CACHE.clear()
        return _unwrap.uv_raster(model, resolution=n)

    t_cold = _median_time(cold, repeat)
    uvr = _unwrap.uv_raster(model, resolution=n)
    t_cached = _median_time(lambda: _unwrap.uv_raster(model, resolution=n), repeat)
    t_unwrap = _median_time(lambda: unwrap_texture(img, verts, model.faces, K, uvr), repeat)
    un = unwrap_texture(img, verts, model.faces, K, uvr)
    t_mirror = _median_time(lambda: mirror_texture(un.texture, uvr), repeat)
    albedo = bake_vertex_attr_to_uv(model.albedo(), model.faces, uvr)
    t_bake = _median_time(lambda: bake_vertex_attr_to_uv(model.albedo(), model.faces, uvr), repeat)
    tgt, src, mask, layout = _poisson_case(n)
    t_poisson = _median_time(lambda: poisson_blend(tgt, src, mask, domain=layout), repeat)
    cpu0 = time.process_time()
    poisson_blend(tgt, src, mask, domain=layout)
    cpu_poisson = time.process_time() - cpu0
    t_complete = _median_time(lambda: complete_texture(un.texture, un.visible, albedo, uvr), repeat)
    vis_frac = float(un.visible.float().sum() / uvr.mask.float().sum())
    return (n, t_cold, t_cached, t_bake, t_unwrap, t_mirror, t_poisson, cpu_poisson, float(mask.mean()), t_complete,
            vis_frac)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--model", default=None, help="a recon3d .npz model (default: the toy model)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.model:
        from recon3d.morphable import load_model

        model = load_model(args.model)
    else:
        from recon3d.morphable.toy import make_toy_model

        model = make_toy_model()
    H = W = 512
    R = pose_angles_to_matrix(torch.tensor([[math.radians(35.0), 0.0, 0.0]]))
    center = model.mean.mean(0, keepdim=True)
    verts = transform_points((model.mean - center)[None], R, torch.tensor([[0.0, 0.0, 0.5]]))
    K = intrinsics_from_fov(30.0, (H, W))
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 256), torch.linspace(0, 1, 256), indexing="ij")
    gt = torch.stack([0.5 + 0.3 * torch.sin(12 * xx), 0.5 + 0.3 * torch.cos(9 * yy), 0.4 + 0.2 * xx], -1)[None]
    frags = rasterize(verts, model.faces, K, (H, W))
    img = sample_texture(gt, interpolate(model.uv, frags, model.uv_faces)) * frags.mask

    rows = [_bench_size(n, model, img, verts, K, args.repeat) for n in args.sizes]

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"model: {model.name} ({model.n_verts} verts, {int(model.faces.shape[0])} faces); photo {H}x{W}; "
          f"torch threads {torch.get_num_threads()}; load average {load:.1f}; median of {args.repeat}; seconds")
    hdr = ("size", "uv_raster cold", "uv_raster cached", "bake", "unwrap", "mirror", "poisson", "poisson CPU s",
           "(unknown frac)", "complete", "(visible frac)")
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for r in rows:
        n = r[0]
        vals = [f"{n}²"] + [f"{v:.4f}" if i not in (7, 9) else f"{v:.2f}" for i, v in enumerate(r[1:])]
        print("| " + " | ".join(vals) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
