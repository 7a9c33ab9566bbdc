"""The committed demo model's answers, recorded so that a code change that alters them fails CI.

    python -m tests.committed_model            # after `make model`: records tests/data/committed-model.json

What is recorded: the model's test accuracy as its metrics.json says, and for fixed test queries their predicted
class and top 10 among the first DATABASE training images, by every metric (the NumPy reference ranking over the
embedder's vectors: what the collection answers). tests/test_realdata.py recomputes them from the committed model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "fmnist-small"
RECORD = Path(__file__).resolve().parent / "data" / "committed-model.json"
QUERIES = list(range(0, 10_000, 500))  # 20 test images, every class
DATABASE = 5000


def answers(model_dir: Path = MODEL) -> dict:
    import numpy as np

    from indexer import ranking
    from indexer.embedder import Embedder
    from training.data import load_image_dataset

    embedder = Embedder(model_dir, precision="float32")
    ds = load_image_dataset("fashion_mnist")
    db = embedder.embed(ds["train"].select(range(DATABASE))["image"], embedder.profile)
    q = embedder.embed(ds["test"].select(QUERIES)["image"], embedder.profile)
    out = {"test_accuracy": json.loads((model_dir / "metrics.json").read_text())["test_accuracy"],
           "queries": QUERIES, "database": DATABASE,
           "predicted": [embedder.labels[i] for i in q.probs.argmax(1)], "top10": {}}
    for metric in ranking.METRICS:
        order = ranking.rank(metric, q.floats, q.codes, db.floats, db.codes)[:, :10]
        out["top10"][metric] = np.asarray(order).tolist()
    return out


if __name__ == "__main__":
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(json.dumps(answers(Path(sys.argv[1]) if len(sys.argv) > 1 else MODEL)) + "\n")
    print(RECORD)
