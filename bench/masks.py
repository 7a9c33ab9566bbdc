"""How well preparation finds a garment lying on a real surface: the object mask it finds (training.analysis.analyse,
what every search and the training's surface views go through) against the garment's true silhouette, in
bench/surfaces.py's scenes (Fashion-MNIST test garments on each surface, half of them shaded as a photo). No model,
no collection: preparation alone.

python bench/masks.py [--scenes 40]   # scenes a surface (twice as many for the photographed ones, 15 textures)

Writes bench/results/masks.json: per surface the mean intersection over union, and the share of scenes where the
garment was missed (IoU below 0.5).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Recorder  # noqa: E402
from bench.surfaces import SURFACES, scene  # noqa: E402


def mask_iou(surface: str, images, seed: int = 1000) -> np.ndarray:
    """Each picture on `surface` (scene i drawn from seed + i; even ones shaded as a photo): the IoU of the mask
    preparation finds with the true silhouette (0 when it finds none)."""
    from training.analysis import analyse

    out = []
    for i, im in enumerate(images):
        photo, truth = scene(im, np.random.default_rng(seed + i), surface, photo_shaded=i % 2 == 0)
        found = analyse(np.asarray(photo)).mask
        found = np.zeros_like(truth) if found is None else found
        out.append((found & truth).sum() / max((found | truth).sum(), 1))
    return np.asarray(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=40, help="scenes a surface (twice as many photographed)")
    args = p.parse_args()
    from training.data import load_image_dataset

    test = load_image_dataset("fashion_mnist")["test"]
    rec = Recorder("masks")
    for surface in SURFACES:
        n = args.scenes * (2 if surface == "photographed" else 1)
        started = time.perf_counter()
        iou = mask_iou(surface, [test[i]["image"] for i in range(n)])
        took = time.perf_counter() - started
        rec.figure(f"mask_iou[{surface}]", float(iou.mean()), "IoU", scenes=n, seconds=round(took, 1))
        rec.figure(f"missed[{surface}]", float((iou < 0.5).mean()), "share", better="lower", scenes=n)


if __name__ == "__main__":
    main()
