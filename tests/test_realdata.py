"""The whole path on real Fashion-MNIST at a small scale: train the demo preset briefly, index, search."""

import numpy as np
import pytest

from tests.conftest import needs_fashion_mnist

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.slow,
    needs_fashion_mnist,
]


def test_fashion_mnist_end_to_end(tmp_path):
    from indexer.embedder import Embedder
    from indexer.factory import open_store
    from indexer.pipeline import build_index
    from training.data import load_image_dataset
    from training.train import TrainArgs, train

    metrics = train(TrainArgs(dataset="fashion_mnist", model="fmnist-small", output=str(tmp_path / "m"), epochs=2,
                              max_train_samples=6000, max_test_samples=1000))
    assert metrics["test_accuracy"] > 0.6  # 2 epochs on 10 % of the data; chance is 0.1
    embedder = Embedder(tmp_path / "m")
    assert embedder.labels[9] == "Ankle boot" and embedder.float_dim == 128 and embedder.n_bits == 64
    store = open_store("fm", str(tmp_path / "q"))
    try:
        report = build_index(embedder, store, "fashion_mnist", limit=1000)
        assert report.indexed == 2000 and store.count() == 2000
        ds = load_image_dataset("fashion_mnist")
        agree = []
        for row in range(0, 1000, 100):
            item = ds["test"][row]
            emb = embedder.embed([item["image"]], embedder.profile)
            hits = store.search("cosine", emb.floats[0], emb.codes[0], k=10)
            assert hits[0].payload["source"] == {"dataset": "fashion_mnist", "split": "test", "row": row}
            agree += [h.payload["label_id"] == item["label"] for h in hits[1:]]
        assert np.mean(agree) > 0.5
        # "unlike the collection": calibrated on the collection's own neighbours, it stays quiet for garments and
        # flags pictures that are nothing like them
        from PIL import Image

        from indexer.calibration import unlike_collection

        profile, source = embedder.profile_for(store.meta)
        assert source == "collection"

        def unlike(image):
            emb = embedder.embed([image], profile)
            return unlike_collection(store.search("cosine", emb.floats[0], emb.codes[0], k=1)[0].score, store.meta)

        flagged = [unlike(ds["test"][row]["image"])["unlike"] for row in range(1000, 1100)]  # not indexed
        assert np.mean(flagged) < 0.1
        checks = (np.indices((96, 96)).sum(0) // 12 % 2 * 255).astype(np.uint8)  # a checkerboard
        assert unlike(Image.fromarray(checks))["unlike"] is True
    finally:
        store.close()


def test_the_committed_demo_model_still_gives_its_recorded_answers():
    """The shipped model (models/fmnist-small) loads, classifies the test set as its metrics.json records, and
    answers fixed queries as recorded when it was committed (tests/committed_model.py): a change to the image path,
    the model code or the ranking that would silently change the demo fails here."""
    import json

    from indexer.embedder import Embedder
    from tests.committed_model import MODEL, RECORD, answers
    from training.data import load_image_dataset

    assert (MODEL / "model.safetensors").is_file(), "the demo model is committed: models/fmnist-small"
    recorded = json.loads(RECORD.read_text())
    embedder = Embedder(MODEL, precision="float32")
    test = load_image_dataset("fashion_mnist")["test"]
    probs = embedder.embed(test["image"], embedder.profile).probs
    accuracy = float((probs.argmax(1) == np.asarray(test["label"])).mean())
    assert accuracy == pytest.approx(recorded["test_accuracy"], abs=0.002)
    now = answers(MODEL)
    assert now["predicted"] == recorded["predicted"]
    for metric, top10 in recorded["top10"].items():
        same = np.mean([a[:5] == b[:5] for a, b in zip(now["top10"][metric], top10, strict=True)])
        assert same == 1.0, f"{metric}: the top 5 changed for {1 - same:.0%} of the recorded queries"
