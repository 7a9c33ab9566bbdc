"""Shared fixtures: a generated image folder of visually distinct classes, a tiny model trained on it, and
an embedded Qdrant collection built from them. Real components throughout, at tiny sizes."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from bench.common import fill_shape

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

def _fashion_mnist_present() -> bool:
    from training.data import fashion_mnist_files_present

    return fashion_mnist_files_present()


needs_fashion_mnist = pytest.mark.skipif(
    not _fashion_mnist_present(),
    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)

CLASSES = {"circle": (220, 40, 40), "square": (40, 180, 60), "triangle": (50, 80, 220)}


def draw_shape(kind: str, rng: random.Random, size: int = 32) -> Image.Image:
    bg = tuple(rng.randint(0, 60) for _ in range(3))
    image = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(image)
    r = rng.randint(size // 4, size // 2 - 2)
    cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
    colour = tuple(min(255, max(0, c + rng.randint(-30, 30))) for c in CLASSES[kind])
    fill_shape(d, kind, cx, cy, r, colour)
    return image


def same_ranking(a: list, b: list, atol: float = 1e-4) -> bool:
    """Two answers (lists of hits) give the same hits in the same order, scores equal but for float rounding between
    engines: two hits may trade places (or one cross the cut at the last place) only when their score and cosine are
    equal within `atol`, as the tiny model's near-duplicate shapes can be; the order of a near-tie is float rounding
    on the machine that trained the model, not ranking."""
    def key(h) -> tuple:
        return h.id, h.score, h.score if h.cosine is None else h.cosine

    def explained(x, y) -> bool:
        where = {h[0]: h for h in y}
        near = [where.get(h[0], y[-1]) for h in x]
        return all(h[0] == g[0] or (abs(h[1] - n[1]) <= atol and abs(h[2] - n[2]) <= atol)
                   for h, g, n in zip(x, y, near, strict=True))

    x, y = [key(h) for h in a], [key(h) for h in b]
    return len(x) == len(y) and np.allclose([h[1] for h in x], [h[1] for h in y], atol=atol) and (
        not x or (explained(x, y) and explained(y, x)))


def on_paper(shape: Image.Image, size: tuple[int, int], at: tuple[int, int], scale: int = 3,
             paper=(236, 232, 224)) -> Image.Image:
    """A shape (draw_shape's) as a person photographs one: in its own colours on light paper, enlarged `scale`
    times, at `at` in a frame of `size`."""
    a = np.asarray(shape).copy()
    a[(a == a[0, 0]).all(-1)] = paper  # its dark background is the paper now
    big = Image.fromarray(a).resize((shape.width * scale, shape.height * scale), Image.Resampling.NEAREST)
    photo = Image.new("RGB", size, paper)
    photo.paste(big, at)
    return photo


def make_shapes(root: Path, per_class: int, seed: int) -> Path:
    """An `imagefolder`: one sub-folder per class, `per_class` PNGs each (the loader carves the test split)."""
    rng = random.Random(seed)
    for kind in CLASSES:
        (root / kind).mkdir()
        for i in range(per_class):
            draw_shape(kind, rng).save(root / kind / f"{i:04d}.png")
    return root


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory) -> Path:
    return make_shapes(tmp_path_factory.mktemp("shapes"), 40, seed=0)


@pytest.fixture(scope="session")
def tiny_model(shapes_dir, tmp_path_factory) -> Path:
    from training.train import TrainArgs, train

    out = tmp_path_factory.mktemp("models") / "tiny-shapes"
    train(TrainArgs(dataset=str(shapes_dir), model="tiny", output=str(out), epochs=12, bits=16, batch_size=16,
                    learning_rate=5e-3, instance_weight=0.0, colour_views=False))
    return out


@pytest.fixture(scope="session")
def tiny_backbone(shapes_dir, tmp_path_factory) -> Path:
    """A backbone pretrained by `python -m training pretrain`'s code on the shapes, one epoch at 32 px."""
    from training.pretrain import PretrainArgs, pretrain

    out = tmp_path_factory.mktemp("backbones") / "backbone"
    pretrain(PretrainArgs(output=str(out), sources=str(shapes_dir), per_source=64, image_size=32, batch_size=16,
                          epochs=1))
    return out


@pytest.fixture(scope="session")
def indexed(tiny_model, shapes_dir, tmp_path_factory):
    """(qdrant folder, collection name) of the shapes indexed by the tiny model into the embedded engine."""
    from indexer.embedder import Embedder
    from indexer.factory import open_store
    from indexer.pipeline import build_index

    qdrant = tmp_path_factory.mktemp("qdrant")
    store = open_store("shapes", str(qdrant))
    try:
        build_index(Embedder(tiny_model), store, str(shapes_dir), batch_size=32)
    finally:
        store.close()
    return qdrant, "shapes"


def app_process_on(model, qdrant, collection, data_dir, *flags: str):
    """`python -m app` as its own process, once it answers: (Popen, url) (bench/mixed.py starts it the same way)."""
    from bench.mixed import start_app

    return start_app(model, collection, qdrant, data_dir, *flags)


@contextlib.contextmanager
def running_app(model, qdrant, collection, data_dir, auth=None, **settings):
    """The app on loopback, launched as `python -m app` launches it, on the first port it could bind (Gradio's
    own search, from 7860 up); yields (url, SearchService)."""
    from app.main import build_ui, launch_options
    from app.service import SearchService, Settings

    service = SearchService(Settings(model_dir=str(model), collection=collection, qdrant=str(qdrant),
                                     data_dir=str(data_dir), **settings))
    demo = build_ui(service)
    demo.queue().launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, show_error=True,
                        quiet=True, auth=auth, **launch_options(service))
    try:
        yield f"http://127.0.0.1:{demo.server_port}/", service
    finally:
        demo.close()
        service.close()


def own_collection(indexed, folder: Path) -> tuple[Path, str]:
    """A copy of the shapes collection in `folder` (qdrant folder, name): what a test may write to."""
    qdrant, name = indexed
    shutil.copytree(qdrant / name, folder / name, ignore=shutil.ignore_patterns(".lock"))
    return folder, name


@pytest.fixture(scope="module")
def served(indexed, tiny_model, tmp_path_factory):
    """(gradio_client.Client, SearchService, data dir) of the app serving the shapes collection on loopback: a copy
    of its own per module, for tests that read. A test that writes takes `served_own`."""
    from gradio_client import Client

    qdrant, name = own_collection(indexed, tmp_path_factory.mktemp("served"))
    data_dir = tmp_path_factory.mktemp("appdata")
    # One address (loopback) makes every test's calls: no per-client limit here (tests/test_access.py tests it).
    with running_app(tiny_model, qdrant, name, data_dir, requests_per_min=0, upload_mb_per_min=0) as (url, service):
        yield Client(url, verbose=False), service, data_dir


@pytest.fixture
def served_own(indexed, tiny_model, tmp_path):
    """As `served`, on a collection and data dir of this test's own: what it writes no other test sees."""
    from gradio_client import Client

    qdrant, name = own_collection(indexed, tmp_path / "own-qdrant")
    with running_app(tiny_model, qdrant, name, tmp_path / "own-data", requests_per_min=0,
                     upload_mb_per_min=0) as (url, service):
        yield Client(url, verbose=False), service, tmp_path / "own-data"


@pytest.fixture
def refusing_port():
    """A loopback port held bound, never listening, for the test's length: a connection to it is refused, and no
    other process can take it meanwhile."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@pytest.fixture
def rest_standin():
    """The Qdrant REST API on loopback, answered by qdrant-client's local mode (tests/qdrant_standin.py)."""
    from tests.qdrant_standin import QdrantStandIn

    server = QdrantStandIn(api_key="test-key").start()
    yield server
    server.stop()


@pytest.fixture
def signed_in_as_alice(monkeypatch):
    """Gradio's mocked "Sign in with Hugging Face" (what it offers outside a Space), against the Hub stand-in."""
    import huggingface_hub.hf_api

    from tests.hub_standin import HubStandIn

    hub = HubStandIn("alice")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False, raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_standin_token")
    monkeypatch.setattr(huggingface_hub.hf_api.api, "endpoint", hub.url)
    yield
    hub.stop()
