"""Re-pose faces in photos: rotate the head (yaw/pitch) or frontalize it, whole image kept.

    python -m pipelines.rotate img.png --yaw -45 -30 -15 0 15 30 45 --out out/rot
    python -m pipelines.rotate photos/ --yaw -30 0 30 --pitch -10 10 --gif --out out/rot
    python -m pipelines.rotate --demo astronaut --frontalize --out out/rot

Per image, into ``OUT/<stem>/``: one PNG per pose (``<stem>_yaw+15_pitch+0.png``; angles are
changes of pose, or the target pose with ``--absolute``), ``<stem>_frontal.png`` with
``--frontalize``, ``<stem>_grid.png`` (input then every pose, side by side), ``<stem>_turntable.gif``
with ``--gif``, the rotated meshes ``<stem>_yaw+15_pitch+0.obj`` (model frame, with the completed
texture) and ``<stem>_rotate.json``, atomically; ``--refine net`` corrects every view (learned refiner), ``--restore`` restores them;
``--method latent`` edits the aligned face in the StyleGAN2 latent space instead (pipelines/_latent.py). One bad image never stops a batch (``--resume``, ``--manifest``, ``--engine``: see reconstruct). Exit codes: 0 ok, 1 some failed, 2 usage.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

from pipelines._cli import DEMOS, add_batch, add_common, add_refine, add_restore, add_texture, check_job_folder, check_refiner, check_restorer, check_uv_generator  # isort: skip
from pipelines._cli import collect_jobs, describe_input, image_grid, load_model_arg, no_inputs, prepare, run_jobs, save_turntable, setup_logging  # isort: skip
from pipelines._latent import add_latent, check_latent, process_latent  # isort: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.rotate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="image files, folders or globs")
    p.add_argument("--demo", choices=DEMOS, help="use a public-domain photo bundled with a dependency")
    p.add_argument("--yaw", type=float, nargs="+", default=None, help="yaw angles in degrees (default -30 -15 0 15 30)")
    p.add_argument("--pitch", type=float, nargs="+", default=[0.0], help="pitch angles in degrees (default 0)")
    p.add_argument("--absolute", action="store_true", help="angles are the target head pose, not a change")
    p.add_argument("--frontalize", action="store_true", help="also write the frontalized face (yaw = pitch = 0)")
    p.add_argument("--gif", action="store_true", help="also write a turntable GIF of the yaw sweep")
    p.add_argument("--grid-size", type=int, default=256, help="height of each grid cell in pixels (default 256)")
    p.add_argument("--no-mesh", action="store_true", help="do not write the rotated meshes")
    p.add_argument("--no-blend", action="store_true", help="no Poisson blending of the face silhouette")
    p.add_argument("--model", default=None, help="a converted .npz morphable model (default: the shipped model)")
    p.add_argument("--fast", action="store_true", help="fast fitting preset")
    add_texture(p, 512)
    p.add_argument("--out", default="out", help="output folder (default ./out); one sub-folder per image")
    add_refine(p)
    add_latent(p)
    add_restore(p, "of every rendered view")
    add_common(p)
    add_batch(p)
    return p


def _fmt(a: float) -> str:
    return f"{a:+.0f}" if float(a).is_integer() else f"{a:+.1f}"


def _process(src, stem: str, args, model, out_root: Path):

    import recon3d.reconstruct as api
    from recon3d.batch import Outcome
    from recon3d.edit import frontalize, restore_views, rotate_views, view_report
    from recon3d.io import save_image
    from recon3d.io.atomic import atomic_dir
    from recon3d.io.export import reconstruction_mesh
    from recon3d.io.mesh import save_mesh

    check_job_folder(out_root / stem)
    cfg = api.ReconstructConfig(texture_size=args.texture_size, fast=args.fast, max_pixels=args.max_pixels)
    rec = api.reconstruct(src, model=model, config=cfg, device=args.device, name=stem)
    poses = [(y, p) for p in args.pitch for y in (args.yaw if args.yaw is not None else [-30.0, -15.0, 0.0, 15.0, 30.0])]
    results = rotate_views(rec, poses, absolute=args.absolute, **(kw := dict(blend=not args.no_blend, refine=args.refine, refiner=args.refiner, texture_method=args.texture, uv_generator=args.uv_generator)))
    refine = (lambda v: restore_views(rec, v, weights=args.restore_weights, device=args.device)) if args.restore else (lambda v: v)
    results = refine(results)
    with atomic_dir(out_root / stem) as out:  # the folder appears complete, or not at all
        record = {"input": describe_input(src, stem), "pose_deg": rec.pose_deg, "absolute": args.absolute, "refine": args.refine, "texture": args.texture, "restored": args.restore, "outputs": []}
        for (yaw, pitch), r in zip(poses, results, strict=True):
            name = f"{stem}_yaw{_fmt(yaw)}_pitch{_fmt(pitch)}"
            save_image(out / f"{name}.png", r.image)
            entry = {"yaw": yaw, "pitch": pitch, "image": f"{name}.png", "pose_deg": r.pose_deg.tolist(),
                     "filled_px": int(r.filled.sum()), **view_report(rec, r)}
            if not args.no_mesh:
                mesh = reconstruction_mesh(rec).replace(verts=r.verts_model.numpy(), normals=None)
                save_mesh(out / f"{name}.obj", mesh, texture_name=f"{stem}_texture.png")
                entry["mesh"] = f"{name}.obj"
            record["outputs"].append(entry)
        grid_imgs = [rec.image] + [r.image for r in results]
        if args.frontalize:
            f = refine([frontalize(rec, **kw)])[0]
            save_image(out / f"{stem}_frontal.png", f.image)
            record["frontal"] = {"image": f"{stem}_frontal.png", "pose_deg": f.pose_deg.tolist()}
            grid_imgs.append(f.image)
        image_grid(grid_imgs, args.grid_size).save(out / f"{stem}_grid.png")
        if args.gif:
            sweep = [r for (y, p), r in zip(poses, results, strict=True) if p == args.pitch[0]]
            save_turntable([r.image for r in sweep], out / f"{stem}_turntable.gif")
            record["gif"] = f"{stem}_turntable.gif"
        (out / f"{stem}_rotate.json").write_text(json.dumps(record, indent=1))
    msg = f"{stem}: pose yaw {rec.pose_deg['yaw']:+.1f} pitch {rec.pose_deg['pitch']:+.1f}, {len(results)} views -> {out_root / stem}"
    return Outcome(msg, (out_root / stem,), {"pose_deg": rec.pose_deg, "timings": rec.timings})


def _setup(args, model=None):
    """The per-item function (in each worker: loads the ``--model`` once)."""
    if args.method == "latent":  # no 3D model: the face is edited in the prior's latent space
        return lambda job: process_latent(job.source, job.name, args, Path(args.out), _fmt)
    model = model if model is not None else load_model_arg(args.model, args.device)
    return lambda job: _process(job.source, job.name, args, model, Path(args.out))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    if (rc := no_inputs(parser, args)) is not None:
        return rc
    if bad := [a for a in (args.yaw or []) + args.pitch if not -90 <= a <= 90]:
        print(f"error: angles must be within [-90, 90] degrees, got {bad}", file=sys.stderr)
        return 2
    if not 16 <= args.grid_size <= 4096 or not 16 <= args.texture_size <= 8192:
        print("error: --grid-size must be within [16, 4096] and --texture-size within [16, 8192]", file=sys.stderr)
        return 2
    out_root = Path(args.out)
    if (rc := prepare(args, out_root) or check_restorer(args) or check_refiner(args) or check_uv_generator(args) or check_latent(args)) is not None:
        return rc
    from recon3d.errors import Recon3DError

    jobs, missing = collect_jobs(args.demo, args.inputs)
    try:
        model = load_model_arg(args.model, args.device) if args.method == "warp" else None
    except Recon3DError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    setup = functools.partial(_setup, args, model if args.engine == "serial" else None)
    return run_jobs(jobs, setup, desc="rotate", out_root=out_root, args=args, missing=missing)


if __name__ == "__main__":
    raise SystemExit(main())
