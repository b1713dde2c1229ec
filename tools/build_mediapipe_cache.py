"""Stand-alone MediaPipe Face Mesh pass used by ``python -m pipelines.build_model``.

This file is *executed* by the separate build interpreter (``.build-venv``, created by
``tools/build_venv.sh``; MediaPipe 0.10.21 needs numpy < 2), never imported by recon3d. It
imports only the standard library, numpy, cv2 and mediapipe.

For every image it runs Face Mesh (static image mode, ``refine_landmarks=False``: 468 points,
one face) and appends the raw result to a resumable cache:

``OUT.npz`` keys: ``paths`` (N,) str, ``points`` (N,468,3) f4 (MediaPipe's normalised
x, y in [0, 1] of the image width/height, z relative depth in units of the image width,
smaller = nearer the camera), ``sizes`` (N,2) i4 (H, W), ``found`` (N,) bool, and
``group_<NAME>`` (n,) i4: the vertex ids of MediaPipe's documented landmark groups
(``FACEMESH_LIPS``, ``..._LEFT_EYE``, ...; "LEFT" is the subject's left).

Usage: ``PYTHON tools/build_mediapipe_cache.py --out OUT.npz --list FILE_WITH_ONE_IMAGE_PATH_PER_LINE``.
Progress is written to stderr as ``done/total`` lines (the orchestrating pipeline draws the bar).
"""

from __future__ import annotations

import argparse
import os
import sys


def _groups() -> dict:
    import numpy as np
    from mediapipe.python.solutions import face_mesh_connections as fmc

    out = {}
    for name in dir(fmc):
        if name.startswith("FACEMESH_") and name != "FACEMESH_TESSELATION":
            ids = sorted({int(i) for edge in getattr(fmc, name) for i in edge})
            out["group_" + name[len("FACEMESH_"):]] = np.array(ids, dtype=np.int32)
    return out


def _save(out: str, paths: list, points: list, sizes: list, found: list) -> None:
    import numpy as np

    tmp = out + ".tmp.npz"
    np.savez(
        tmp,
        **_groups(),
        paths=np.array(paths, dtype=str),
        points=np.asarray(points, dtype=np.float32).reshape(-1, 468, 3),
        sizes=np.asarray(sizes, dtype=np.int32).reshape(-1, 2),
        found=np.asarray(found, dtype=bool),
    )
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--list", required=True, help="text file, one image path per line")
    ap.add_argument("--save-every", type=int, default=100)
    args = ap.parse_args(argv)

    import cv2
    import mediapipe as mp
    import numpy as np

    cv2.setNumThreads(1)
    wanted = [ln.strip() for ln in open(args.list) if ln.strip()]
    paths, points, sizes, found = [], [], [], []
    if os.path.isfile(args.out):  # resume
        z = np.load(args.out)
        paths = [str(p) for p in z["paths"]]
        points = list(z["points"])
        sizes = list(z["sizes"])
        found = list(z["found"])
    done = set(paths)
    todo = [p for p in wanted if p not in done]
    total = len(wanted)
    n = len(wanted) - len(todo)
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=1, refine_landmarks=False, min_detection_confidence=0.3
    ) as fm:
        for k, p in enumerate(todo):
            img = cv2.imread(p, cv2.IMREAD_COLOR)
            if img is None:
                print(f"warning: cannot read {p}", file=sys.stderr)
                pts, ok, hw = np.zeros((468, 3), np.float32), False, (0, 0)
            else:
                res = fm.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
                hw = img.shape[:2]
                if res.multi_face_landmarks:
                    lm = res.multi_face_landmarks[0].landmark
                    pts = np.array([[q.x, q.y, q.z] for q in lm], np.float32)
                    ok = True
                else:
                    pts, ok = np.zeros((468, 3), np.float32), False
            paths.append(p)
            points.append(pts)
            sizes.append(hw)
            found.append(ok)
            n += 1
            print(f"{n}/{total}", file=sys.stderr, flush=True)
            if (k + 1) % args.save_every == 0:
                _save(args.out, paths, points, sizes, found)
    _save(args.out, paths, points, sizes, found)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
