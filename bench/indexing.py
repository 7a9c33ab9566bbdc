"""End-to-end seconds to index Fashion-MNIST's 70,000 images (read → preprocess → embed → upsert), and each
stage's share; the baseline is qdrant-client's local mode doing the upsert of the same vectors.

python bench/indexing.py [--model models/fmnist-small]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Recorder  # noqa: E402
from indexer.embedder import Embedder  # noqa: E402
from indexer.factory import open_store  # noqa: E402
from indexer.pipeline import build_index  # noqa: E402
from training import config  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    config.add_flags(p, "model")  # the app's defaults
    p.add_argument("--local-mode-points", type=int, default=10_000,
                   help="points to upsert through qdrant-client's local mode for the baseline (it is slow)")
    args = p.parse_args()
    rec = Recorder("indexing")
    embedder = Embedder(args.model)
    tmp = Path(tempfile.mkdtemp(prefix="bench-index-"))
    try:
        store = open_store("bench", str(tmp))
        t0 = time.perf_counter()
        report = build_index(embedder, store, "fashion_mnist")
        total = time.perf_counter() - t0
        store.close()
        stages = report.as_dict()
        rec.figure("index_70k_seconds", total, "s", points=report.indexed, stage_seconds=stages["seconds"],
                   stage_share=stages["share"])
        upsert_rate = report.indexed / stages["seconds"]["upsert"]
        # the baseline: the same kind of points through qdrant-client's local mode
        local = open_store("bench", ":memory:")
        local.ensure(dict(embedder.meta))

        n = args.local_mode_points
        rng = np.random.default_rng(0)
        floats = rng.normal(size=(n, embedder.float_dim)).astype(np.float32)
        codes = (rng.random((n, embedder.n_bits)) > 0.5).astype(np.uint8)
        t0 = time.perf_counter()
        for s in range(0, n, 256):
            ids = [str(uuid.UUID(int=i + 1)) for i in range(s, min(s + 256, n))]
            local.upsert(ids, floats[s : s + 256], codes[s : s + 256], [{"label": "x"}] * len(ids))
        local_rate = n / (time.perf_counter() - t0)
        local.close()
        rec.figure("upsert_points_per_s", upsert_rate, "points/s", local_rate, "qdrant-client local mode")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(rec.save())


if __name__ == "__main__":
    main()
