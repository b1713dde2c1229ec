"""Convert a user-supplied morphable model (BFM 2009, Deep3DFaceRecon BFM front, BFM 2017/2019, eos SFM)
to recon3d's ``.npz`` model format.

Examples (file layouts and where to get the models: docs/MODELS_USER.md)::

    python -m pipelines.convert_model ../shared/face-models/eos-sfm/sfm_shape_3448.bin --format sfm \\
        --landmarks ../shared/face-models/eos-sfm/ibug_to_sfm.txt \\
        --contours ../shared/face-models/eos-sfm/sfm_model_contours.json \\
        --symmetry ../shared/face-models/eos-sfm/sfm_reference_symmetry.txt \\
        --expression-blendshapes ../shared/face-models/eos-sfm/expression_blendshapes_3448.bin --out sfm.npz

    python -m pipelines.convert_model BFM/BFM_model_front.mat --format bfm-deep3d --out bfm_front.npz

Exit codes: 0 success, 1 a recon3d error (bad or missing file), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from recon3d.errors import Recon3DError
from recon3d.morphable import save_model
from recon3d.morphable.convert import FORMATS, load_user_model

log = logging.getLogger("pipelines.convert_model")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.convert_model", description=__doc__.splitlines()[0])
    ap.add_argument("input", type=Path, help="the model file (.mat, .h5 or eos .bin)")
    ap.add_argument("--format", required=True, choices=FORMATS)
    ap.add_argument("--landmarks", type=Path, help="iBUG-68 mapping, eos TOML format (ibug_to_X.txt)")
    ap.add_argument("--contours", type=Path, help="contour vertices, eos JSON format (X_model_contours.json)")
    ap.add_argument("--symmetry", type=Path, help="vertex symmetry list, eos format (X_symmetry.txt)")
    ap.add_argument("--expression-blendshapes", type=Path, help="eos blendshapes file (sfm only)")
    ap.add_argument("--name", help="model name stored in the file (default: from the input)")
    ap.add_argument("--out", type=Path, required=True, help="output .npz")
    ap.add_argument("--half", action="store_true", help="store the bases as float16 (smaller file)")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else (logging.DEBUG if args.verbose else logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        model = load_user_model(
            args.input, format=args.format, landmarks=args.landmarks, contours=args.contours,
            symmetry=args.symmetry, expression_blendshapes=args.expression_blendshapes, name=args.name,
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        sha = save_model(model, args.out, half=args.half)
    except Recon3DError as e:
        log.error("%s", e, exc_info=args.verbose)
        return 1
    summary = {**model.summary(), "out": str(args.out), "sha256": sha,
               "landmarks_exact": len(model.meta.get("landmarks_exact", [])),
               "faces_flipped_to_ccw": model.meta.get("faces_flipped_to_ccw")}
    log.info("wrote %s", json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
