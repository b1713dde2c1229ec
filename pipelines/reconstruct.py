"""Reconstruct textured 3D faces from photos.

    python -m pipelines.reconstruct img.png --export obj
    python -m pipelines.reconstruct photos/ "more/*.jpg" --export obj glb --out out --resume
    python -m pipelines.reconstruct --demo astronaut --export obj
    python -m pipelines.reconstruct --manifest photos.csv --engine local --workers 4 --resume --out out

Writes ``OUT/<stem>/`` per face: ``<stem>.obj`` + ``.mtl`` + ``<stem>_texture.png`` (completed UV
texture; and/or ``.glb``/``.ply``), ``<stem>.json`` (pose in degrees, camera, coefficients, model,
timings), the visible-only texture and its mask, an overlay image and the 68 landmarks. Each folder
is written atomically; ``--resume`` skips inputs whose folders are complete (and were made from
that same input); every run first removes the temporary folders of killed runs. One bad image
never stops a batch. ``OUT/index.jsonl`` gets a line per item; ``--engine local|ray`` runs the items
in worker processes or on Ray (see docs/SCALE.md). Exit codes: 0 all succeeded, 1 some failed (listed at the end), 2 usage error (bad options,
an unknown or absent ``--device``, an ``--out`` that cannot be written), before any work.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import time
from pathlib import Path

from pipelines._cli import (
    DEMOS,
    add_batch,
    add_common,
    add_restore,
    add_texture,
    check_job_folder,
    check_restorer,
    check_uv_generator,
    collect_jobs,
    load_model_arg,
    no_inputs,
    prepare,
    run_jobs,
    setup_logging,
)

log = logging.getLogger("pipelines.reconstruct")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.reconstruct", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="image files, folders or globs")
    p.add_argument("--demo", choices=DEMOS, help="use a public-domain photo bundled with a dependency")
    p.add_argument("--export", nargs="+", choices=["obj", "glb", "ply"], default=["obj"], help="mesh formats (default obj)")
    p.add_argument("--out", default="out", help="output folder (default ./out); one sub-folder per face")
    p.add_argument("--model", default=None, help="a converted .npz morphable model (default: the shipped model)")
    p.add_argument("--landmarks", default=None, help="68 landmarks (.pts/.txt/.npy) for a single input: skips detection")
    p.add_argument("--detector", choices=["dlib", "recon3d", "face_alignment"], default="recon3d",
                   help="landmark backend (default recon3d: dlib's detector chain + our large-pose regressor; "
                        "dlib: dlib's frontal 68-point predictor)")
    p.add_argument("--regressor", default=None, metavar="VERSION|FILE",
                   help="landmark regressor of the recon3d backend: a shipped version (v1, ...) or a weights file "
                        "(default: the shipped default)")
    p.add_argument("--no-mtcnn", action="store_true",
                   help="leave MTCNN out of the detector chain (it runs last, for occluded faces the others miss)")
    p.add_argument("--all-faces", action="store_true", help="reconstruct every face (default: the largest)")
    p.add_argument("--fast", action="store_true", help="fast fitting preset (fewer photometric iterations)")
    p.add_argument("--no-photometric", action="store_true", help="landmark fit only (no analysis-by-synthesis)")
    add_texture(p, 1024)
    p.add_argument("--delight", action="store_true", help="remove the fitted shading from the texture")
    p.add_argument("--no-mirror", action="store_true", help="do not mirror visible texels before Poisson blending")
    p.add_argument("--no-extras", action="store_true", help="write only the mesh, texture and json")
    add_restore(p, "of the photo first: the texture is unwrapped from the restored photo")
    add_common(p)
    add_batch(p)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    if (rc := no_inputs(parser, args)) is not None:
        return rc
    if args.texture_size < 16 or args.texture_size > 8192:
        print("error: --texture-size must be between 16 and 8192", file=sys.stderr)
        return 2

    out_root = Path(args.out)
    if (rc := prepare(args, out_root)) is not None or (rc := check_restorer(args) or check_uv_generator(args)) is not None:
        return rc

    from recon3d.batch import exported
    from recon3d.errors import Recon3DError

    named, missing = collect_jobs(args.demo, args.inputs, all_faces=args.all_faces)
    if args.landmarks and (len(named) != 1 or args.manifest):
        print("error: --landmarks needs exactly one input image (a manifest has a 'landmarks' column)", file=sys.stderr)
        return 2
    try:
        model = load_model_arg(args.model, args.device)
    except Recon3DError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    done = exported(out_root, args.export, all_faces=args.all_faces)
    setup = functools.partial(_setup, args, model if args.engine == "serial" else None)
    return run_jobs(named, setup, desc="reconstruct", out_root=out_root, args=args, missing=missing, done=done)


def _setup(args, model=None):
    """The per-item function (in each worker: loads the ``--model`` once)."""
    from recon3d.batch import Outcome, source_id
    from recon3d.detect import CHAIN_V1_STAGES
    from recon3d.reconstruct import ReconstructConfig, reconstruct_all, save_reconstruction

    model = model if model is not None else load_model_arg(args.model, args.device)
    cfg = ReconstructConfig(texture_size=args.texture_size, fast=args.fast, photometric=not args.no_photometric,
                            delight=args.delight, mirror=not args.no_mirror, detector=args.detector,
                            detector_stages=CHAIN_V1_STAGES if args.no_mtcnn else None, regressor=args.regressor,
                            max_pixels=args.max_pixels, texture_method=args.texture, uv_generator=args.uv_generator)
    out_root = Path(args.out)

    def process(job) -> Outcome:
        t0 = time.perf_counter()
        check_job_folder(out_root / job.name)
        src = job.source
        if args.restore:  # the faces restored first, so the texture is unwrapped from the restored photo
            from recon3d.edit.restore import restore_photo

            src = restore_photo(src, weights=args.restore_weights, device=args.device, max_pixels=args.max_pixels)
        recs = reconstruct_all(src, model=model, landmarks=job.column("landmarks", args.landmarks), config=cfg,
                               all_faces=args.all_faces, device=args.device, name=job.name)
        lines = []
        for i, rec in enumerate(recs):
            batch = {"source": source_id(job.source), "job": job.name, "face": i, "n_faces": len(recs),
                     "all_faces": args.all_faces, "restored": args.restore, "texture": args.texture}
            save_reconstruction(rec, out_root / rec.name, formats=args.export, extras=not args.no_extras, batch=batch)
            pose = rec.pose_deg
            lines.append(f"{rec.name}: yaw {pose['yaw']:+.1f} pitch {pose['pitch']:+.1f} roll {pose['roll']:+.1f} deg, "
                         f"{time.perf_counter() - t0:.1f} s -> {out_root / rec.name}")
        data = {"pose_deg": recs[0].pose_deg, "timings": recs[0].timings, "n_faces": len(recs)}
        return Outcome("\n".join(lines), tuple(out_root / rec.name for rec in recs), data)

    return process


if __name__ == "__main__":
    raise SystemExit(main())
