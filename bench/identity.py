"""The identity network (recon3d.nn.identity, dlib's face recognition ResNet in PyTorch) against dlib.

Usage::

    python bench/identity.py ../shared/300w/helen_testset --max 100
    python bench/identity.py FACE_DIR... [--identity-dir ../shared/identity] [--max N] [--threads 1]

1. Agreement, on every face dlib's frontal detector (upsampled once) finds in FACE_DIR (68 points
   from dlib's shape predictor), up to ``--max`` faces: L2 between dlib's
   ``compute_face_descriptor(img, shape)`` and (a) our chip, 8-bit quantised as dlib's, + our net
   (the ``backend="torch"`` path), (b) our differentiable float chip + our net (what the losses
   see), (c) dlib's own chip (``get_face_chip``) + our net, which isolates the network from the
   chip. Also the chips' pixel difference (8-bit levels) against dlib's chip.
2. Separation on ``--identity-dir``: ``deepface`` (the pairs of master.csv) and ``lfw`` (every pair;
   identity = file name without ``_enroll``/``_verify`` and index), largest face of each photo, for
   dlib and ours: mean same / different distance, verification accuracy at dlib's 0.6 threshold
   (share of pairs on the right side) and AUC (same pairs should be closer).
3. Time per face on this CPU (``--threads`` torch threads; detection and landmarks excluded): ours
   batch 1 (chip + net), ours batch 16 (net on 16 chips, per face), dlib's compute_face_descriptor.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

from recon3d.detect.dlib_backend import dlib_model_path, dlib_module
from recon3d.nn.identity import extract_chip, face_chip_transform, load_identity_net

IMAGES = (".jpg", ".jpeg", ".png")


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    return np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB")))


def tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255.0


class Models:
    def __init__(self):
        self.dlib = dlib_module()
        self.det = self.dlib.get_frontal_face_detector()
        self.sp = self.dlib.shape_predictor(str(dlib_model_path("shape_predictor_68_face_landmarks.dat")))
        self.rec = self.dlib.face_recognition_model_v1(str(dlib_model_path("dlib_face_recognition_resnet_model_v1.dat")))
        self.net = load_identity_net()

    def shapes(self, img):
        return [self.sp(img, r) for r in self.det(img, 1)]

    def ours(self, img, shape, quantize=True) -> np.ndarray:
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        with torch.no_grad():
            chip = extract_chip(tensor(img), face_chip_transform(pts)[None], quantize=quantize)
            return self.net(chip)[0].double().numpy()

    def theirs(self, img, shape) -> np.ndarray:
        return np.asarray(self.rec.compute_face_descriptor(img, shape), dtype=np.float64)


def agreement(models: Models, dirs: list[Path], max_faces: int) -> dict:
    rows, chips_ours, chips_dlib = [], [], []
    for d in dirs:
        for f in sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGES):
            if len(rows) >= max_faces:
                break
            img = load_rgb(f)
            for shape in models.shapes(img):
                if len(rows) >= max_faces:
                    break
                ref = models.theirs(img, shape)
                dchip = np.asarray(models.dlib.get_face_chip(img, shape, 150, 0.25))
                pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
                m = face_chip_transform(pts)[None]
                with torch.no_grad():
                    cq = extract_chip(tensor(img), m, quantize=True)
                    cf = extract_chip(tensor(img), m)
                    on_dlib_chip = models.net(tensor(dchip))[0].double().numpy()
                    dq, df = models.net(cq)[0].double().numpy(), models.net(cf)[0].double().numpy()
                chips_ours.append((img, m))
                chips_dlib.append(cq)
                pix = np.abs(cq[0].permute(1, 2, 0).numpy() * 255 - dchip)
                rows.append((np.linalg.norm(dq - ref), np.linalg.norm(df - ref), np.linalg.norm(on_dlib_chip - ref),
                             pix.mean(), pix.max(), np.linalg.norm(ref)))
    return {"rows": np.array(rows), "chips": chips_ours}


def timings(models: Models, samples: list, repeats: int = 3) -> dict[str, float]:
    n = min(len(samples), 16)
    img, m = samples[0]
    x = tensor(img)
    with torch.no_grad():
        models.net(extract_chip(x, m))  # warm up
        t = []
        for _ in range(repeats):
            for img, m in samples[:n]:
                x = tensor(img)
                t0 = time.perf_counter()
                models.net(extract_chip(x, m, quantize=True))
                t.append(time.perf_counter() - t0)
        b1 = float(np.median(t))
        batch = torch.cat([extract_chip(tensor(img), m, quantize=True) for img, m in (samples * 16)[:16]])
        t = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            models.net(batch)
            t.append((time.perf_counter() - t0) / 16)
        b16 = float(np.median(t))
    t = []
    for img, _ in samples[:n]:
        shapes = models.shapes(img)
        if not shapes:
            continue
        t0 = time.perf_counter()
        models.theirs(img, shapes[0])
        t.append(time.perf_counter() - t0)
    return {"ours_b1": b1, "ours_b16": b16, "dlib": float(np.median(t))}


def auc(same: np.ndarray, diff: np.ndarray) -> float:
    """P(distance of a same pair < distance of a different pair), ties counting half."""
    s, d = same[:, None], diff[None, :]
    return float(((s < d).sum() + 0.5 * (s == d).sum()) / (len(same) * len(diff)))


def identity_pairs(folder: Path) -> tuple[list[Path], list[tuple[int, int, bool]]]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGES)
    master = folder / "master.csv"
    if master.is_file():
        index = {f.name: i for i, f in enumerate(files)}
        with master.open() as fh:
            pairs = [(index[r["file_x"]], index[r["file_y"]], r["Decision"].strip().lower() == "yes")
                     for r in csv.DictReader(fh) if r["file_x"] in index and r["file_y"] in index]
        return files, pairs
    ids = [re.sub(r"_(enroll|verify)(_\d+)?$", "", f.stem) for f in files]
    return files, [(i, j, ids[i] == ids[j]) for i in range(len(files)) for j in range(i + 1, len(files))]


def separation(models: Models, folder: Path) -> dict | None:
    files, pairs = identity_pairs(folder)
    if not files:
        return None
    desc: dict[str, dict[int, np.ndarray]] = {"dlib": {}, "ours": {}}
    for i, f in enumerate(files):
        img = load_rgb(f)
        shapes = models.shapes(img)
        if not shapes:
            continue
        shape = max(shapes, key=lambda s: s.rect.width() * s.rect.height())
        desc["dlib"][i], desc["ours"][i] = models.theirs(img, shape), models.ours(img, shape)
    out = {"photos": len(files), "faces": len(desc["dlib"])}
    for name, dd in desc.items():
        ok = [(i, j, s) for i, j, s in pairs if i in dd and j in dd]
        dist = np.array([np.linalg.norm(dd[i] - dd[j]) for i, j, _ in ok])
        same = np.array([s for _, _, s in ok])
        out[name] = {"pairs": len(ok), "same": int(same.sum()), "d_same": dist[same].mean(), "d_diff": dist[~same].mean(),
                     "acc": float(((dist < 0.6) == same).mean()), "auc": auc(dist[same], dist[~same])}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("face_dirs", nargs="+", type=Path, help="folders of face photos")
    p.add_argument("--identity-dir", type=Path, default=Path("../shared/identity"),
                   help="folder with deepface/ (master.csv) and lfw/ (default ../shared/identity)")
    p.add_argument("--max", type=int, default=100, help="at most this many faces for the agreement (default 100)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    a = p.parse_args(argv)
    for d in a.face_dirs:
        if not d.is_dir():
            print(f"error: {d} is not a folder", file=sys.stderr)
            return 2
    torch.set_num_threads(a.threads)
    models = Models()

    ag = agreement(models, a.face_dirs, a.max)
    r = ag["rows"]
    if not len(r):
        print("error: no face found", file=sys.stderr)
        return 1
    print(f"## agreement with dlib: {len(r)} faces from {', '.join(map(str, a.face_dirs))} "
          f"(dlib descriptor norm {r[:, 5].mean():.3f})")
    print("| descriptor vs dlib's compute_face_descriptor | max L2 | mean L2 |")
    print("|---|---|---|")
    for k, name in enumerate(("our chip (8-bit, as dlib) + our net", "our float chip (differentiable) + our net",
                              "dlib's chip + our net")):
        print(f"| {name} | {r[:, k].max():.2e} | {r[:, k].mean():.2e} |")
    print(f"chip pixels, ours (8-bit) vs dlib's get_face_chip: mean |d| {r[:, 3].mean():.4f}, "
          f"max {r[:, 4].max():.0f} levels")

    tm = timings(models, ag["chips"])
    print(f"\n## time per face ({a.threads} thread(s), detection excluded): ours batch 1 {tm['ours_b1'] * 1e3:.1f} ms, "
          f"ours batch 16 {tm['ours_b16'] * 1e3:.1f} ms, dlib {tm['dlib'] * 1e3:.1f} ms")

    print("\n## same / different person separation (largest face per photo)")
    print("| set | backend | faces/photos | pairs (same) | mean d same | mean d diff | acc @0.6 | AUC |")
    print("|---|---|---|---|---|---|---|---|")
    for sub in ("deepface", "lfw"):
        folder = a.identity_dir / sub
        if not folder.is_dir():
            print(f"| {sub} | - | not found at {folder} | | | | | |")
            continue
        s = separation(models, folder)
        if s is None:
            continue
        for name in ("dlib", "ours"):
            v = s[name]
            print(f"| {sub} | {name} | {s['faces']}/{s['photos']} | {v['pairs']} ({v['same']}) | {v['d_same']:.3f} | "
                  f"{v['d_diff']:.3f} | {v['acc']:.3f} | {v['auc']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
