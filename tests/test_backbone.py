"""The pretrained backbone as every collection's starting point: a folder searched with it at once (training.searcher),
its own model fine-tuned from it and swapped in without losing a point (indexer.reembed, app.collection), and any
ConvNeXt checkpoint in the Hub's format fine-tuned by the same code. Tiny sizes, on generated pictures."""

import io
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file

from tests.conftest import draw_shape, make_shapes, running_app
from training.augment import OUTLINE_SHARE


def _flat_copy(shapes_dir, folder, step=6):
    folder.mkdir()
    for path in sorted(shapes_dir.glob("*/*.png"))[::step]:
        shutil.copy(path, folder / f"{path.parent.name}_{path.name}")
    return folder


def test_the_code_projection_gives_balanced_bits_whose_hamming_neighbours_are_cosine_neighbours():
    from training.searcher import code_projection

    g = torch.Generator().manual_seed(0)
    centres = torch.randn(8, 32, generator=g) * 3 + 5  # off-centre clusters: raw signs would be all alike
    features = centres[torch.arange(400) % 8] + torch.randn(400, 32, generator=g)
    weight, bias = code_projection(features, 16)
    codes = (features @ weight.T + bias > 0).float()
    assert codes.mean(0).min() > 0.2 and codes.mean(0).max() < 0.8  # every bit splits the pictures
    hamming = (codes[:, None] != codes[None]).sum(-1).float() + torch.eye(400) * 99
    same = (hamming.argmin(1) % 8 == torch.arange(400) % 8).float().mean()
    assert same > 0.9  # the nearest code is of the same cluster (chance: 1/8)


def test_a_folder_without_classes_is_searched_with_the_backbone_alone(tiny_backbone, shapes_dir, tmp_path):
    from app.collection import prepare

    flat = _flat_copy(shapes_dir, tmp_path / "holiday")
    done = prepare(flat, qdrant=str(tmp_path / "q"), models_dir=tmp_path / "models", start=str(tiny_backbone))
    assert done["model"] == str(tmp_path / "models" / "holiday-backbone") and done["fine_tune"] is None
    assert done["index"]["indexed"] == len(list(flat.iterdir()))
    card = (tmp_path / "models" / "holiday-backbone" / "README.md").read_text()
    assert "without training" in card
    with running_app(done["model"], tmp_path / "q", "holiday", tmp_path / "data") as (url, service):
        client = Client(url, verbose=False)
        for metric in ("cosine", "hamming"):
            _, results, *_ = client.predict(handle_file(str(sorted(flat.iterdir())[3])), metric, 3,
                                            api_name="/search")
            assert results[0]["source"]["filename"] == sorted(flat.iterdir())[3].name
            assert {r["label"] for r in results} == {"unlabelled"}
        assert "holiday-backbone" in service.status()


def test_a_labelled_folder_is_searched_first_by_the_backbone_then_by_its_own_fine_tuned_model(tiny_backbone, tmp_path,
                                                                                             monkeypatch):
    """`python -m app.collection FOLDER --no-serve`: the backbone indexes, the folder's model fine-tunes from it (its
    classes and an instance head, by default), the collection is embedded again by it; a rerun reuses it."""
    from app.collection import main
    from indexer.factory import open_store

    monkeypatch.setenv("BACKBONE", str(tiny_backbone))
    monkeypatch.chdir(tmp_path)  # models/<name> is relative to the working directory
    (tmp_path / "mine").mkdir()
    folder = make_shapes(tmp_path / "mine", 12, seed=5)
    assert main([str(folder), "--data-dir", str(tmp_path / "d"), "--epochs", "1", "--no-serve"]) == 0
    metrics = json.loads((tmp_path / "models" / "mine" / "metrics.json").read_text())
    assert metrics["model"] == str(tiny_backbone) and metrics["instance_dim"] > 0 and metrics["epochs"] == 1
    assert metrics["args"]["colour_views"] is True  # a folder's pictures have colours: tinted copies trained on
    assert metrics["args"]["outline_views"] == OUTLINE_SHARE  # and line drawings of them
    first = json.loads((tmp_path / "models" / "mine-backbone" / "metrics.json").read_text())
    assert first["kind"].startswith("backbone") and first["test_accuracy"] is not None
    store = open_store("mine", str(tmp_path / "d" / "qdrant"))
    try:
        assert store.meta["model"] == "mine" and store.count() == 36
        assert store.meta["float_dim"] == metrics["bits"] + metrics["instance_dim"]  # code and instance parts
    finally:
        store.close()


def test_switching_the_model_embeds_every_point_again_keeping_uploads(tiny_backbone, tiny_model, shapes_dir,
                                                                      tmp_path):
    from app.collection import prepare
    from indexer.embedder import Embedder
    from indexer.sources import resolve_image

    upload = io.BytesIO()
    draw_shape("square", random.Random(9)).save(upload, format="PNG")

    done = prepare(shapes_dir, qdrant=str(tmp_path / "q"), models_dir=tmp_path / "models", start=str(tiny_backbone),
                   image_dir=tmp_path / "data" / "images")
    with running_app(done["model"], tmp_path / "q", done["collection"], tmp_path / "data") as (url, service):
        added, _ = service.add([(upload.getvalue(), "square")])
        before = service.overview()
        switched = service.switch_model(str(tiny_model))
        after = service.overview()
        assert switched["points"] == before["images"] == after["images"] and not switched["lost"]
        assert before["model"] == done["collection"] + "-backbone" and after["model"] == "tiny-shapes"
        assert after["float_dim"] == Embedder(tiny_model).float_dim != before["float_dim"]
        # the served page answers with the new model: the upload finds itself, a picture of the folder too
        client = Client(url, verbose=False)
        _, results, *_ = client.predict(handle_file(str(sorted(shapes_dir.glob("circle/*.png"))[2])), "cosine", 3,
                                        api_name="/search")
        assert results[0]["score"] > 0.999 and results[0]["label"] == "circle"
        hits = service.queries.store.retrieve([added[0]["id"]], with_vectors=True)
        picture = resolve_image(hits[0].payload, service.settings.image_dir)
        fresh = Embedder(tiny_model).embed([picture], service.profile).floats[0]
        assert np.allclose(hits[0].float_vector, fresh, atol=1e-4)  # the new model's vector, not the old one's
        assert "tiny-shapes" in service.status()


def test_training_starts_from_the_backbone_by_default(tiny_backbone, monkeypatch, tmp_path):
    from training.args import starting_point

    monkeypatch.setenv("BACKBONE", str(tiny_backbone))
    assert starting_point(None) == str(tiny_backbone) and starting_point("tiny") == "tiny"
    monkeypatch.setenv("BACKBONE", str(tmp_path / "no-backbone"))
    assert starting_point(None) == "fmnist-small"
    monkeypatch.delenv("BACKBONE")
    monkeypatch.chdir(tmp_path)  # run from elsewhere: the committed backbone, beside the code
    assert Path(starting_point(None)) == Path(__file__).resolve().parent.parent / "models" / "backbone"


def test_the_body_learning_rate_scale_holds_the_pretrained_body_while_the_heads_learn(tiny_backbone, shapes_dir,
                                                                                     tmp_path):
    """--body_lr_scale: at 0 fine-tuning leaves every weight of the backbone's ConvNeXt body as pretrained and trains
    the heads; at the default 1 the body is trained too."""
    from safetensors.torch import load_file

    from training.train import TrainArgs, train

    start = load_file(tiny_backbone / "model.safetensors")
    for scale in (0.0, 1.0):
        out = tmp_path / f"body{scale:g}"
        train(TrainArgs(dataset=str(shapes_dir), model=str(tiny_backbone), output=str(out), epochs=1, batch_size=16,
                        body_lr_scale=scale))
        got = load_file(out / "model.safetensors")
        body = {k: v for k, v in got.items() if k.startswith("convnext.")}
        assert body and all(k.removeprefix("convnext.") in start for k in body)
        moved = [k for k, v in body.items() if not v.equal(start[k.removeprefix("convnext.")])]
        assert (moved == []) if scale == 0 else len(moved) > len(body) // 2
        if scale == 0:  # the heads learnt the classes on the held body, and the card says how it was trained
            assert json.loads((out / "metrics.json").read_text())["test_accuracy"] >= 0.9
            assert "| learning rate | 0.002, the ConvNeXt body at 0 of it |" in (out / "README.md").read_text()


def test_a_convnext_checkpoint_in_the_hubs_format_fine_tunes_with_the_same_code(shapes_dir, tmp_path):
    """A local dir laid out as a published checkpoint is (facebook/convnext-tiny-224: ConvNextForImageClassification,
    1,000 classes, a centre-cropping processor): `--model DIR` fine-tunes it; its weights are where training starts,
    its head is replaced, and the dir written keeps the product's processor (no crop)."""
    from transformers import ConvNextConfig, ConvNextForImageClassification, ConvNextImageProcessor

    from training.modeldir import load_model
    from training.train import TrainArgs, train

    hub = tmp_path / "convnext-hub"
    source = ConvNextForImageClassification(ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2,
                                                           num_labels=1000, image_size=32))
    source.save_pretrained(hub)
    ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875).save_pretrained(hub)
    metrics = train(TrainArgs(dataset=str(shapes_dir), model=str(hub), output=str(tmp_path / "m"), epochs=1,
                              bits=16, learning_rate=0.0, instance_weight=0.0))
    assert metrics["model"] == str(hub)
    tuned, processor = load_model(tmp_path / "m")
    assert torch.equal(tuned.convnext.embeddings.patch_embeddings.weight,
                       source.convnext.embeddings.patch_embeddings.weight)  # learning rate 0: the checkpoint's
    assert tuned.classifier.out_features == 3 and processor.crop_pct == 1.0


def test_a_backbone_dir_without_its_weights_is_refused(tiny_backbone, shapes_dir, tmp_path):
    from training.searcher import from_backbone

    broken = tmp_path / "broken"
    shutil.copytree(tiny_backbone, broken, ignore=shutil.ignore_patterns("checkpoints", "model.safetensors"))
    with pytest.raises(OSError):
        from_backbone(str(broken), str(shapes_dir), tmp_path / "out")


def test_the_raw_pixel_floor_is_measured_at_indexing_and_the_page_says_when_the_model_is_below_it(indexed, tiny_model):
    from app.notes import status_line
    from indexer.factory import open_store
    from indexer.floor import label_precision_at_10

    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
    assert label_precision_at_10(vectors, np.array(["a", "a", "b", "b"])) == pytest.approx(1 / 3)  # 1 of 3 others
    qdrant, name = indexed
    store = open_store(name, str(qdrant))
    try:
        floor = store.meta["floor"]
    finally:
        store.close()
    assert floor["sample"] == 120 and 0 <= floor["model_p_at_10"] <= 1 and 0 <= floor["pixels_p_at_10"] <= 1
    below = status_line(120, name, "m", {"floor": dict(floor, model_p_at_10=0.3, pixels_p_at_10=0.5)}, None, 0)
    assert "raw pixels group the labels better than this model" in below and "0.50 against 0.30" in below
    above = status_line(120, name, "m", {"floor": dict(floor, model_p_at_10=0.9, pixels_p_at_10=0.5)}, None, 0)
    assert "raw pixels" not in above and status_line(5, name, "m", {}, "fine-tuning", 0).endswith("· fine-tuning")


def test_recoloured_views_mix_each_pixels_channels_or_make_it_grey():
    from training.augment import recolour

    x = torch.rand(64, 3, 8, 8) * 2 - 1
    grey = recolour(x, p=0.0, grey=1.0)
    assert torch.allclose(grey, x.mean(1, keepdim=True).expand_as(x))
    mixed = recolour(x, p=1.0, grey=0.0)
    assert not torch.allclose(mixed, x)  # tinted
    low, high = x.min(1, keepdim=True).values, x.max(1, keepdim=True).values
    assert ((mixed >= low - 1e-6) & (mixed <= high + 1e-6)).all()  # each channel a convex mix of the three
