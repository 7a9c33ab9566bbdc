"""The surface encoder (training.surface_encoder): a copy of a model trained to put its pictures on generated surfaces
where the model puts the pictures themselves. It embeds what preparation found on a real surface and nothing else;
trained for other weights, or switched off, it is not used; a stopped run resumes."""

import json
import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from app.notes import query_note
from indexer.embedder import Embedder
from tests.test_surfaces import photo_on, wood
from training.modeldir import fingerprint, load_model, model_files
from training.surface_encoder import SurfaceArgs, train_surface_encoder


def _args(model, shapes_dir, epochs: int = 3) -> SurfaceArgs:
    return SurfaceArgs(model=str(model), dataset=str(shapes_dir), epochs=epochs, batch_size=32, learning_rate=2e-3,
                       eval_images=40, work=str(model.parent / "work"))


@pytest.fixture(scope="module")
def with_encoder(tiny_model, shapes_dir, tmp_path_factory):
    model = tmp_path_factory.mktemp("encoder") / "tiny"
    shutil.copytree(tiny_model, model)
    return model, train_surface_encoder(_args(model, shapes_dir))


def test_the_encoder_learns_to_find_the_original_from_its_picture_on_a_surface(with_encoder):
    """Saved in the model dir, tied to the model's weights; its training loss falls, and on the test split's pictures
    on generated surfaces it finds each picture's original among the test split's at least as often as the model."""
    model, metrics = with_encoder
    config = json.loads((model / "surface" / "config.json").read_text())
    assert config["surface_encoder_for"] == fingerprint(model)
    assert metrics["losses"][-1] < metrics["losses"][0]
    assert metrics["original_in_top5_encoder"] >= metrics["original_in_top5_model"]


def test_only_pictures_found_on_a_surface_are_embedded_by_the_encoder(with_encoder, monkeypatch):
    """A pullover on wood grain is embedded by the encoder (the answer says so); a picture on a flat background by the
    model, as without the encoder; the page's note says which; SURFACE_ENCODER=0 embeds both with the model."""
    model, _ = with_encoder
    on_wood, _ = photo_on(wood(0), (170, 30, 40), False)
    flat = Image.new("RGB", (200, 150), "white")
    flat.paste(Image.new("RGB", (60, 60), (170, 30, 40)), (40, 30))
    embedder = Embedder(model, precision="float32")
    emb = embedder.embed([on_wood, flat], embedder.profile)
    assert emb.prepared[0]["surface"] and emb.prepared[0]["surface_encoder"]
    assert not emb.prepared[1]["surface"] and "surface_encoder" not in emb.prepared[1]
    assert "encoder for photos on surfaces" in query_note({"prepared": {**emb.prepared[0], "profile": "collection"}})
    monkeypatch.setenv("SURFACE_ENCODER", "0")
    plain = Embedder(model, precision="float32")
    assert plain.surface_model is None
    off = plain.embed([on_wood, flat], plain.profile)
    assert "surface_encoder" not in off.prepared[0]
    np.testing.assert_allclose(off.floats[1], emb.floats[1], atol=1e-5)
    assert np.abs(off.floats[0] - emb.floats[0]).max() > 1e-3
    np.testing.assert_allclose(np.linalg.norm(emb.floats, axis=1), 1.0, atol=1e-5)


def test_an_encoder_trained_for_other_weights_is_not_used(with_encoder, tmp_path, caplog):
    """The model retrained (its weights changed) and its old encoder left beside it: the model embeds everything, and
    the log says to train the encoder again."""
    model, _ = with_encoder
    changed = tmp_path / "changed"
    shutil.copytree(model, changed)
    net, _ = load_model(changed)
    net.hash.bias.data += 0.01
    net.save_pretrained(changed)
    with caplog.at_level(logging.WARNING):
        assert Embedder(changed).surface_model is None
    assert "train it again" in caplog.text


def test_a_stopped_encoder_run_resumes_after_its_last_epoch(with_encoder, shapes_dir, caplog):
    """Run again with the same arguments, it resumes from its checkpoint in --work: no epoch is trained again and the
    encoder written is the same."""
    model, metrics = with_encoder
    before = (model / "surface" / "model.safetensors").read_bytes()
    with caplog.at_level(logging.INFO, logger="training.surface_encoder"):
        again = train_surface_encoder(_args(model, shapes_dir))
    assert f"resuming after epoch {metrics['epochs']}" in caplog.text
    assert "epoch 1: loss" not in caplog.text
    assert again["losses"] == metrics["losses"]
    assert (model / "surface" / "model.safetensors").read_bytes() == before


def test_the_encoder_travels_with_its_model_dir(with_encoder):
    """What copies a model dir (a Space's bundle, a push to the Hub) takes its surface encoder too, and no
    checkpoint."""
    model, _ = with_encoder
    (model / "checkpoints").mkdir(exist_ok=True)
    (model / "checkpoints" / "trainer_state.json").write_text("{}")
    files = model_files(model)
    assert {"model.safetensors", "config.json", "surface/model.safetensors", "surface/config.json"} <= set(files)
    assert not [f for f in files if f.startswith("checkpoints")]


def test_the_committed_demo_models_encoder_was_trained_for_its_weights():
    """The demo model retrained (make model) without its encoder trained again would leave photos on surfaces to the
    model alone: the committed encoder names the committed weights."""
    from tests.committed_model import MODEL

    config = json.loads((MODEL / "surface" / "config.json").read_text())
    assert config["surface_encoder_for"] == fingerprint(MODEL)
    metrics = json.loads((MODEL / "surface" / "metrics.json").read_text())
    assert metrics["original_in_top5_encoder"] > metrics["original_in_top5_model"]
