"""Benchmark of the pure-PyTorch renderer (recon3d.render), optionally against PyTorch3D.

    python bench/render.py                      # CPU (and CUDA when present), default threads
    python bench/render.py --threads 1 --repeats 15
    python bench/render.py --pytorch3d-python /tmp/p3d-venv/bin/python

Scenes: a face-like height-field mesh (an ellipsoidal cap with a nose bump, seen frontally,
all faces front-facing) with ~10k faces at 256x256 and ~35k faces at 512x512. Timings are
medians over ``--repeats`` runs after warm-up:

* ``rasterize``: visibility + differentiable barycentrics; fwd+bwd backpropagates
  ``bary.sum() + depth.sum()`` to the vertices.
* ``render_mesh``: rasterize + vertex colours + per-pixel SH shading + silhouette antialiasing;
  fwd+bwd backpropagates ``image.sum() + mask.sum()``.

With ``--pytorch3d-python`` the same scene (triangle ids compared with ``cull_backfaces=False``
on both sides) is rasterised by PyTorch3D's ``MeshRasterizer`` in a subprocess running that
interpreter (a separate venv, e.g. ``easypytorch3d==0.7.9.post1`` with torch 2.12.1), which
returns its ``pix_to_face`` and timings through an ``.npz``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SCENES = ((71, 256), (133, 512))  # grid side -> 2*(n-1)^2 faces: 9800 and 34848


def face_like_mesh(n: int, radius: float = 0.09) -> tuple[torch.Tensor, torch.Tensor]:
    """An ``n x n`` height-field "face": verts in the model frame (+Y up, +Z out of the face)."""
    u = torch.linspace(-1.0, 1.0, n)
    yy, xx = torch.meshgrid(u, u, indexing="ij")
    r2 = (xx**2 + yy**2).clamp(max=1.0)
    z = 0.6 * torch.sqrt(1.0 - 0.9 * r2) + 0.05 * torch.exp(-(xx**2 + (yy + 0.1) ** 2) / 0.02)
    verts = torch.stack([xx * radius, -yy * radius * 1.2, z * radius], -1).reshape(-1, 3)
    idx = torch.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = torch.cat([torch.stack([a, c, b], -1).reshape(-1, 3), torch.stack([b, c, d], -1).reshape(-1, 3)])
    return verts, faces


def make_scene(n: int, size: int, device: str):
    from recon3d.camera import intrinsics_from_fov, pose_angles_to_matrix, transform_points

    verts, faces = face_like_mesh(n)
    R = pose_angles_to_matrix(torch.tensor([[0.2, 0.1, 0.0]]))
    vc = transform_points(verts[None], R, torch.tensor([[0.0, 0.0, 0.3]]))
    K = intrinsics_from_fov(40.0, (size, size))
    return vc.to(device), faces.to(device), K.to(device)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_ms(fn, repeats: int, device: str, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench_torch(n: int, size: int, device: str, repeats: int) -> dict:
    from recon3d.render import MeshRenderer, ambient_light, rasterize

    vc, faces, K = make_scene(n, size, device)
    H = W = size
    vcg = vc.clone().requires_grad_()
    col = (torch.rand(vc.shape[1], 3, generator=torch.Generator().manual_seed(0))).to(device)
    light = ambient_light(1, device=device)
    renderer = MeshRenderer(faces, (H, W)).to(device)

    def rast_fwd():
        with torch.no_grad():
            rasterize(vc, faces, K, (H, W))

    def rast_fb():
        fr = rasterize(vcg, faces, K, (H, W))
        (fr.bary.sum() + fr.depth.sum()).backward()

    def rend_fwd():
        with torch.no_grad():
            renderer(vc, K, vert_colors=col, light=light)

    def rend_fb():
        out = renderer(vcg, K, vert_colors=col, light=light)
        (out.image.sum() + out.mask.sum()).backward()

    fr = rasterize(vc, faces, K, (H, W))
    return {
        "faces": int(faces.shape[0]), "size": size, "device": device,
        "covered_px": int((fr.tri_id >= 0).sum()), "visible_faces": int(fr.tri_id.unique().numel() - 1),
        "rasterize_fwd_ms": median_ms(rast_fwd, repeats, device),
        "rasterize_fwdbwd_ms": median_ms(rast_fb, repeats, device),
        "render_fwd_ms": median_ms(rend_fwd, repeats, device),
        "render_fwdbwd_ms": median_ms(rend_fb, repeats, device),
    }


# ------------------------------------------------------------------------------------------
# PyTorch3D comparison (subprocess in another interpreter / venv)
# ------------------------------------------------------------------------------------------


def _p3d_worker(inp: str, out: str) -> int:
    """Runs inside the PyTorch3D interpreter: imports only torch, numpy and pytorch3d."""
    from pytorch3d.renderer import MeshRasterizer, RasterizationSettings
    from pytorch3d.structures import Meshes
    from pytorch3d.utils import cameras_from_opencv_projection

    d = np.load(inp)
    torch.set_num_threads(int(d["threads"]))
    vc = torch.from_numpy(d["verts_cam"]).float()[None]  # (1, V, 3)
    faces = torch.from_numpy(d["faces"]).long()
    K = torch.from_numpy(d["K"]).float()
    H, W = (int(x) for x in d["image_size"])
    repeats = int(d["repeats"])
    # The vertices are already in the OpenCV camera frame: identity extrinsics. PyTorch3D's
    # OpenCV conversion puts pixel centres at half-integers, recon3d at integers (measured: 100 %
    # triangle-id agreement with this shift, 44 % without), hence the +0.5 on the principal point.
    K = K.clone()
    K[:, 0, 2] += 0.5
    K[:, 1, 2] += 0.5
    cams = cameras_from_opencv_projection(torch.eye(3)[None], torch.zeros(1, 3), K, torch.tensor([[H, W]]))
    settings = RasterizationSettings(image_size=(H, W), blur_radius=0.0, faces_per_pixel=1, cull_backfaces=False)
    rast = MeshRasterizer(cameras=cams, raster_settings=settings)

    def fwd():
        with torch.no_grad():
            return rast(Meshes(verts=vc, faces=faces[None]))

    def fb():
        v = vc.clone().requires_grad_()
        fr = rast(Meshes(verts=v, faces=faces[None]))
        (fr.bary_coords.sum() + fr.zbuf.sum()).backward()

    res = {"fwd_ms": median_ms(fwd, repeats, "cpu", warmup=1), "fwdbwd_ms": median_ms(fb, repeats, "cpu", warmup=1)}
    p2f = fwd().pix_to_face[0, ..., 0].numpy()
    np.savez(out, pix_to_face=p2f, timings=json.dumps(res), torch_version=torch.__version__)
    return 0


def bench_pytorch3d(python: str, n: int, size: int, repeats: int, threads: int) -> dict:
    from recon3d.render import rasterize

    vc, faces, K = make_scene(n, size, "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "scene.npz"), os.path.join(tmp, "p3d.npz")
        np.savez(inp, verts_cam=vc[0].numpy(), faces=faces.numpy(), K=K.numpy(), image_size=np.array([size, size]),
                 repeats=repeats, threads=threads)
        env = dict(os.environ)
        subprocess.run([python, str(Path(__file__).resolve()), "--_p3d-worker", inp, out], check=True, env=env)
        d = np.load(out)
        p2f = torch.from_numpy(d["pix_to_face"]).long()
        timings = json.loads(str(d["timings"]))
        version = str(d["torch_version"])
    ours = rasterize(vc, faces, K, (size, size), cull_backfaces=False).tri_id[0]
    covered = (ours >= 0) | (p2f >= 0)
    agree = float((ours == p2f)[covered].float().mean())
    return {"faces": int(faces.shape[0]), "size": size, "p3d_fwd_ms": timings["fwd_ms"],
            "p3d_fwdbwd_ms": timings["fwdbwd_ms"], "tri_id_agreement": agree, "p3d_torch": version}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    ap.add_argument("--device", action="append", help="cpu and/or cuda (default: cpu, plus cuda when present)")
    ap.add_argument("--pytorch3d-python", help="interpreter of a venv with pytorch3d for the comparison")
    ap.add_argument("--p3d-repeats", type=int, default=2)
    ap.add_argument("--p3d-max-size", type=int, default=256,
                    help="largest scene run through PyTorch3D (its CPU rasteriser needs ~1 min per 512² call here)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--_p3d-worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._p3d_worker:
        return _p3d_worker(*args._p3d_worker)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    rows = [bench_torch(n, s, dev, args.repeats) for dev in devices for n, s in SCENES]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, repeats {args.repeats} (median)")
    print("| device | faces | image | covered px | rasterize fwd ms | rasterize fwd+bwd ms | render_mesh fwd ms | render_mesh fwd+bwd ms |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['device']} | {r['faces']} | {r['size']}² | {r['covered_px']} | {r['rasterize_fwd_ms']:.1f} | "
              f"{r['rasterize_fwdbwd_ms']:.1f} | {r['render_fwd_ms']:.1f} | {r['render_fwdbwd_ms']:.1f} |")
    p3d = []
    if args.pytorch3d_python:
        threads = torch.get_num_threads()
        p3d = [bench_pytorch3d(args.pytorch3d_python, n, s, args.p3d_repeats, threads) for n, s in SCENES
               if s <= args.p3d_max_size]
        print(f"\nPyTorch3D MeshRasterizer (CPU, torch {p3d[0]['p3d_torch']}, {threads} threads, "
              f"median of {args.p3d_repeats}), cull_backfaces=False on both sides")
        print("| faces | image | p3d fwd ms | p3d fwd+bwd ms | ours fwd ms | ours fwd+bwd ms | speed-up fwd | speed-up fwd+bwd | tri_id agreement |")
        print("|---|---|---|---|---|---|---|---|---|")
        ours = {r["size"]: r for r in rows if r["device"] == "cpu"}
        for q in p3d:
            r = ours[q["size"]]
            print(f"| {q['faces']} | {q['size']}² | {q['p3d_fwd_ms']:.0f} | {q['p3d_fwdbwd_ms']:.0f} | "
                  f"{r['rasterize_fwd_ms']:.1f} | {r['rasterize_fwdbwd_ms']:.1f} | "
                  f"{q['p3d_fwd_ms'] / r['rasterize_fwd_ms']:.0f}x | {q['p3d_fwdbwd_ms'] / r['rasterize_fwdbwd_ms']:.0f}x | "
                  f"{q['tri_id_agreement']:.4%} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"torch": rows, "pytorch3d": p3d}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
