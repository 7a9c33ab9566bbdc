"""Images/s of the indexer's batched embedder vs a `transformers` pipeline called one image at a time.

Images are decoded before timing (decoding is the indexer's "read" stage, bench/indexing.py), so both sides
measure preprocessing + the model. The embedder runs at its default precision (the model in bfloat16 where the
hardware has native bfloat16, README "Benchmarks") and once more in float32, to show the share of each; a model
that embeds each image over several views (`image+mirror+smooth`: training.views) is measured once more over each
lighter set of views (`image`, `image+mirror`).

python bench/embedding.py [--model models/fmnist-small] [--images 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Recorder  # noqa: E402
from indexer.embedder import Embedder  # noqa: E402
from training import config  # noqa: E402
from training.data import load_image_dataset  # noqa: E402
from training.views import VIEWS  # noqa: E402


def tiny_224_model(path: Path) -> Path:
    """A ConvNeXt-tiny-sized model (hidden 96-192-384-768, depths 3-3-9-3) at 224 px, randomly initialised:
    the size of facebook/convnext-tiny-224, which the Hub would give a user with a network."""
    from transformers import ConvNextConfig

    from training.model import ConvNextForImageHashing, make_processor

    config = ConvNextConfig(num_labels=10, id2label={i: str(i) for i in range(10)},
                            label2id={str(i): i for i in range(10)}, n_bits=64)
    ConvNextForImageHashing(config).save_pretrained(path)
    make_processor(224).save_pretrained(path)
    return path


def batched_rate(model_dir: Path, images: list, precision: str | None, views: str | None = None
                 ) -> tuple[float, Embedder]:
    embedder = Embedder(model_dir, precision=precision, views=views)
    embedder.embed(images[:256], embedder.profile)  # warm-up: oneDNN builds its kernels for the batch shape
    t0 = time.perf_counter()
    embedder.embed(images, embedder.profile)
    return len(images) / (time.perf_counter() - t0), embedder


def measure(model_dir: Path, images: list, n_single: int, rec: Recorder, tag: str) -> None:
    from transformers import pipeline

    pipe = pipeline("image-feature-extraction", model=str(model_dir), device="cpu")
    pipe(images[0].convert("RGB"))
    t0 = time.perf_counter()
    for image in images[:n_single]:
        pipe(image.convert("RGB"))
    single = n_single / (time.perf_counter() - t0)
    batched, embedder = batched_rate(model_dir, images, None)
    precision = embedder.precision
    rec.figure(f"embed_images_per_s[{tag}]", batched, "img/s", single, "pipeline one image at a time",
               images=len(images), single_images=n_single, precision=precision, views=embedder.views)
    for views in VIEWS[: VIEWS.index(embedder.views)]:  # what the views cost: the same model over fewer of them
        rate, _ = batched_rate(model_dir, images, None, views=views)
        rec.figure(f"embed_images_per_s[{tag}, {views}]", rate, "img/s", single, "pipeline one image at a time",
                   images=len(images), single_images=n_single, precision=precision, views=views)
    if precision != "float32":
        batched32, _ = batched_rate(model_dir, images, "float32")
        rec.figure(f"embed_images_per_s[{tag}, float32]", batched32, "img/s", single, "pipeline one image at a time",
                   images=len(images), single_images=n_single, precision="float32", views=embedder.views)


def main() -> None:
    p = argparse.ArgumentParser()
    config.add_flags(p, "model")  # the app's defaults
    p.add_argument("--images", type=int, default=2000)
    args = p.parse_args()
    rec = Recorder("embedding")
    images = list(load_image_dataset("fashion_mnist")["test"].select(range(args.images))["image"])
    for image in images:
        image.load()
    measure(Path(args.model), images, min(300, args.images), rec, "demo model, 28 px")
    with tempfile.TemporaryDirectory() as tmp:
        measure(tiny_224_model(Path(tmp)), images[:128], 32, rec, "convnext-tiny size, 224 px")
    print(rec.save())


if __name__ == "__main__":
    main()
