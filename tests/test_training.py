import json

import numpy as np
import pytest
import torch

from tests.conftest import needs_fashion_mnist
from training.data import FASHION_MNIST_NAMES, load_image_dataset
from training.model import ConvNextForImageHashing, build_model, hash_centres, native_bfloat16
from training.modeldir import check_model_dir, load_model


def test_imagefolder_gets_train_and_test_with_class_names(shapes_dir):
    ds = load_image_dataset(str(shapes_dir))
    assert set(ds) == {"train", "test"}
    assert ds["train"].features["label"].names == ["circle", "square", "triangle"]
    assert len(ds["train"]) + len(ds["test"]) == 120
    # the carved test split is stratified: every class is in it
    assert set(ds["test"]["label"]) == {0, 1, 2}


def test_hash_centres_are_balanced_and_far_apart():
    c = hash_centres(10, 64)
    assert c.shape == (10, 64)
    assert torch.all(c.sum(1) == 0)  # each centre half ones
    assert torch.all(c.sum(0) == 0)  # each bit +1 for half the classes: no bit is constant
    d = (c[:, None, :] != c[None, :, :]).sum(-1)
    assert torch.all(d[~torch.eye(10, dtype=bool)] >= 32)
    r = hash_centres(100, 48)  # more classes than a Hadamard matrix holds: seeded random, still balanced
    assert r.shape == (100, 48) and torch.all(r.sum(1) == 0)


def test_trained_model_saves_safetensors_metrics_and_card(tiny_model):
    names = {p.name for p in tiny_model.iterdir()}
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "metrics.json", "README.md"} <= names
    metrics = json.loads((tiny_model / "metrics.json").read_text())
    assert metrics["bits"] == 16
    assert metrics["test_accuracy"] >= 0.8  # three colours and shapes: easy
    # trained with flips (no instance head): embedded (and scored) as the mean over the image and its mirror
    assert metrics["embed_views"] == "image+mirror" and "test_accuracy_single_view" in metrics
    assert metrics["precision"] == "float32"
    model, processor = load_model(tiny_model)
    assert model.config.id2label[0] == "circle" and model.config.n_bits == 16
    # the training set's image profile travels with the model (what training prepared its images with)
    assert model.config.image_profile == metrics["image_profile"] and metrics["image_profile"]["colour"]


def test_pickled_or_incomplete_model_dir_is_refused(tmp_path, tiny_model):
    bad = tmp_path / "pickled"
    bad.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        (bad / name).write_bytes((tiny_model / name).read_bytes())
    torch.save({"x": torch.zeros(1)}, bad / "pytorch_model.bin")
    with pytest.raises(ValueError, match="pickled"):
        check_model_dir(bad)
    (bad / "pytorch_model.bin").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        check_model_dir(bad)


def test_fine_tuning_a_checkpoint_replaces_its_head(tiny_model):
    """The pretrained path (a Hub id in real use) loads the backbone and gives the new labels and bits."""
    model, processor = build_model(str(tiny_model), n_bits=32, id2label={0: "a", 1: "b"})
    assert isinstance(model, ConvNextForImageHashing)
    # The loss pulls codes towards the new labels' hash centres (a buffer once came out of from_pretrained as garbage).
    labels = torch.tensor([0, 1, 1, 0])
    out = model(torch.randn(4, 3, 32, 32), labels=labels)
    out.hash_logits.retain_grad()
    out.loss.backward()
    pull = -out.hash_logits.grad.sign()
    assert (pull == hash_centres(2, 32)[labels]).float().mean() > 0.9
    assert model.hash.out_features == 32 and model.classifier.out_features == 2
    source, _ = load_model(tiny_model)
    assert torch.equal(model.convnext.embeddings.patch_embeddings.weight,
                       source.convnext.embeddings.patch_embeddings.weight)


def test_training_resumes_from_its_last_checkpoint(shapes_dir, tmp_path):
    from training.train import TrainArgs, train

    args = dict(dataset=str(shapes_dir), model="tiny", output=str(tmp_path / "m"), bits=16, batch_size=32,
                instance_weight=0.0)
    first = train(TrainArgs(epochs=1, precision="auto", **args))
    assert first["resumed_from"] is None
    # auto: bfloat16 autocast where this CPU runs it natively
    assert first["precision"] == ("bfloat16" if native_bfloat16(torch.device("cpu")) else "float32")
    second = train(TrainArgs(epochs=2, **args))
    assert second["resumed_from"] and "checkpoint" in second["resumed_from"]


@pytest.mark.realdata
@needs_fashion_mnist
def test_fashion_mnist_from_debian_files():
    ds = load_image_dataset("fashion_mnist")
    assert len(ds["train"]) == 60_000 and len(ds["test"]) == 10_000
    assert ds["train"].features["label"].names == FASHION_MNIST_NAMES
    first = ds["train"][0]
    assert first["image"].size == (28, 28) and first["label"] == 9  # the IDX file's first item: an ankle boot
    counts = np.bincount(ds["test"]["label"], minlength=10)
    assert counts.tolist() == [1000] * 10


def test_decoded_split_gives_what_the_lazy_transform_gives(shapes_dir):
    """Training decodes small splits once into memory: the tensors must equal the lazy path's (and search time's)
    preprocessing, and augmentation must change images without changing their labels or shape."""
    from training.inputs import DecodedImages, decoded_or_lazy, make_transform

    split = load_image_dataset(str(shapes_dir))["train"].select(range(16))
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    decoded = decoded_or_lazy(split, 24, mean, std, "none")
    assert isinstance(decoded, DecodedImages)
    lazy = decoded_or_lazy(split, 24, mean, std, "none", max_bytes=0)  # too big for memory: lazy
    assert not isinstance(lazy, DecodedImages)
    eager = make_transform(24, mean, std, "none")(split[:16])
    for i in range(16):
        assert torch.allclose(decoded[i]["pixel_values"], eager["pixel_values"][i], atol=1e-5)
        assert torch.allclose(lazy[i]["pixel_values"], eager["pixel_values"][i], atol=1e-5)
        assert int(decoded[i]["labels"]) == int(eager["labels"][i])
    augmented = DecodedImages(split, 24, mean, std, "flip+shift+erase")
    torch.manual_seed(0)
    changed = sum(not torch.equal(augmented[i]["pixel_values"], decoded[i]["pixel_values"]) for i in range(16))
    assert changed >= 8 and augmented[0]["pixel_values"].shape == (3, 24, 24)
    with pytest.raises(ValueError, match="augment must be one of"):
        DecodedImages(split, 24, mean, std, "rotate")


def test_config_overrides_reach_the_model_and_its_loss(shapes_dir, tmp_path):
    """`--config_overrides` changes a preset's architecture and the training knobs, and survives save/load."""
    from training.schedule import parse_overrides
    from training.train import TrainArgs, train

    overrides = '{"hidden_sizes": [8, 24], "head_dropout": 0.5, "proxy_weight": 1.0}'
    train(TrainArgs(dataset=str(shapes_dir), model="tiny", output=str(tmp_path / "m"), epochs=1, bits=16,
                    batch_size=32, config_overrides=overrides, augment="none"))
    model, _ = load_model(tmp_path / "m")
    assert model.config.hidden_sizes == [8, 24] and model.hash.in_features == 24
    assert model.config.embed_views == "image"  # never saw a mirrored image: embedded as it is
    assert model.proxies.shape == (3, 24)  # the shapes data set's three classes
    x, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        assert torch.equal(model(x).hash_logits, model(x).hash_logits)  # eval: no dropout
        with_proxies = model(x, labels=labels).loss
        model.config.proxy_weight = 0.0
        assert model(x, labels=labels).loss < with_proxies  # the proxy loss is part of the training loss
        model.train()
        assert not torch.equal(model(x).hash_logits, model(x).hash_logits)
    with pytest.raises(ValueError, match="JSON object"):
        parse_overrides("head_dropout=0.2")
    with pytest.raises(ValueError, match="--bits"):
        build_model("tiny", n_bits=16, id2label={0: "a"}, overrides={"n_bits": 8})


def test_a_wrong_precision_is_refused_before_anything_loads(tmp_path):
    from training.train import TrainArgs, train

    with pytest.raises(ValueError, match="--precision must be one of auto, float32, bfloat16"):
        train(TrainArgs(dataset=str(tmp_path / "no-such-dataset"), output=str(tmp_path / "m"), precision="fp16"))


def test_the_command_takes_dashed_flags_and_transformers_training_arguments(shapes_dir, tmp_path, capsys):
    """`python -m training` takes its own flags with dashes (the indexer's and the app's style) and any flag of
    transformers' TrainingArguments, which reaches the Trainer over the defaults; a flag of neither is refused."""
    import json

    from training.__main__ import main

    out = tmp_path / "m"
    main(["--dataset", str(shapes_dir), "--model", "tiny", "--output", str(out), "--epochs", "1", "--bits", "16",
          "--batch-size", "32", "--max-train-samples", "64", "--lr_scheduler_type", "linear", "--logging_steps", "3"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_samples"] == 64 and metrics["batch_size"] == 32
    assert metrics["trainer_overrides"] == {"logging_steps": "3", "lr_scheduler_type": "linear"}
    [checkpoint] = (out / "checkpoints").glob("checkpoint-*")
    assert json.loads((checkpoint / "trainer_state.json").read_text())["logging_steps"] == 3
    with pytest.raises(SystemExit) as stop:
        main(["--dataset", str(shapes_dir), "--output", str(tmp_path / "n"), "--no-such-flag", "1"])
    assert stop.value.code == 2 and "--no-such-flag" in capsys.readouterr().err


def test_the_schedule_suits_the_sets_size():
    from training.schedule import MIN_STEPS, auto_schedule

    assert auto_schedule(60_000) == (128, 12.0)  # Fashion-MNIST: as the demo always trained
    batch, epochs = auto_schedule(162)  # the folder: 60 steps in all before
    assert batch == 16 and epochs * -(-162 // batch) >= MIN_STEPS
    assert auto_schedule(1617)[0] == 32 and auto_schedule(162, batch_size=8, epochs=3) == (8, 3)


def test_a_folder_with_bad_files_trains_and_reports_each_by_path(tmp_path):
    """A truncated JPEG, a text file named .png and an empty file among the pictures: training completes, and the
    metrics name each skipped file with why; a set this small gets the warning, and accuracy comes with chance."""
    import json

    from tests.conftest import make_shapes
    from tests.hostile import bad_cases
    from training.train import TrainArgs, train

    (tmp_path / "shapes").mkdir()
    folder = make_shapes(tmp_path / "shapes", 12, seed=3)
    (folder / "circle" / "broken.jpg").write_bytes(bad_cases()["truncated_jpeg"][0])
    (folder / "square" / "notes.png").write_text("not a picture")
    (folder / "triangle" / "empty.png").write_bytes(b"")
    metrics = train(TrainArgs(dataset=str(folder), model="tiny", output=str(tmp_path / "m"), epochs=2, bits=16))
    skipped = {s["path"]: s["error"] for s in metrics["skipped_files"]}
    assert set(skipped) == {"circle/broken.jpg", "square/notes.png", "triangle/empty.png"}
    assert "truncated" in skipped["circle/broken.jpg"] and "empty" in skipped["triangle/empty.png"]
    assert "not an image" in skipped["square/notes.png"]
    assert metrics["train_samples"] + metrics["test_samples"] == 36
    assert "few to train a model from scratch" in metrics["warning"]
    assert "pretrained backbone" in metrics["warning"] and "facebook/convnext-tiny-224" in metrics["warning"]
    assert 0 < metrics["chance"] <= 0.5 and metrics["batch_size"] == 16  # 3 classes, a stratified test split
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["skipped_files"] == metrics["skipped_files"]


def test_instance_fine_tuning_adds_a_head_that_tells_two_views_of_an_image_from_others(shapes_dir, tiny_model,
                                                                                       tmp_path):
    """`--instance-weight` fine-tunes a model without an instance head: it gets one, trained so that two augmented
    views of an image are each other's nearest among a batch's views (the loss falls); the float vector is then the
    code part and the instance part, the latter holding `instance_share` of the cosine, and the binary code both
    parts' signs."""
    from indexer.embedder import Embedder
    from training.augment import PAIR_AUGMENT, robust_augment
    from training.codes import CLASS_CODE_WEIGHT, INSTANCE_CODE_BITS, instance_hyperplanes
    from training.images import preprocess
    from training.model import INSTANCE_SHARE, instance_loss, partner_rows
    from training.train import TrainArgs, train

    split = load_image_dataset(str(shapes_dir))["train"]
    pixels = preprocess(split[:32]["image"], 32, [0.5] * 3, [0.5] * 3)

    def pair_loss(model):
        torch.manual_seed(1)
        views = robust_augment(torch.cat([pixels, pixels]), torch.full((3,), 1.0), **PAIR_AUGMENT)
        with torch.no_grad():
            out = model.eval()(views)
        return float(instance_loss(out.instance, partner_rows(len(pixels)), 0.1))

    out = tmp_path / "inst"
    metrics = train(TrainArgs(dataset=str(shapes_dir), model=str(tiny_model), output=str(out), epochs=1, bits=16,
                              batch_size=32, instance_weight=0.5, learning_rate=1e-3, colour_views=False))
    assert metrics["args"]["instance_weight"] == 0.5
    untrained, _ = build_model(str(tiny_model), n_bits=16, id2label={0: "a", 1: "b", 2: "c"},
                               overrides={"instance_dim": 64})
    torch.manual_seed(0)
    untrained.instance.reset_parameters()
    model, _ = load_model(out)
    assert model.config.instance_dim == 64 and model.instance.out_features == 64
    later = train(TrainArgs(dataset=str(shapes_dir), model=str(tiny_model), output=str(out), epochs=6, bits=16,
                            batch_size=32, instance_weight=0.5, learning_rate=1e-3, colour_views=False))
    assert later["resumed_from"]
    model, _ = load_model(out)
    assert pair_loss(model) < pair_loss(untrained)

    embedder = Embedder(out)
    emb = embedder.embed(split[:4]["image"], embedder.profile)
    assert embedder.float_dim == 16 + 64 and emb.floats.shape == (4, 80)
    # The binary code carries, after the hash layer's bits, the sides of fixed random hyperplanes the instance part
    # lies on (training.codes), so Hamming tells images apart too: the float vector's instance part gives them again
    # (the hash layer's bits written CLASS_CODE_WEIGHT times, so that the class weighs as much as the image)
    bits = 16 * CLASS_CODE_WEIGHT + INSTANCE_CODE_BITS
    assert model.config.instance_bits and embedder.n_bits == bits and emb.codes.shape == (4, bits)
    planes = instance_hyperplanes(model.config).numpy()
    assert planes.shape == (INSTANCE_CODE_BITS, 64)
    np.testing.assert_array_equal(emb.codes[:, :-INSTANCE_CODE_BITS], np.tile(emb.codes[:, :16], CLASS_CODE_WEIGHT))
    np.testing.assert_array_equal(emb.codes[:, -INSTANCE_CODE_BITS:], emb.floats[:, 16:] @ planes.T > 0)
    np.testing.assert_allclose(np.linalg.norm(emb.floats, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose((emb.floats[:, 16:] ** 2).sum(1), INSTANCE_SHARE, atol=0.05)  # views averaged
    # Trained robust with an instance head: its instance part is also the mean over the image and its mirror smoothed
    # (training.views), its class outputs (probabilities, the hash layer's bits) the plain views' alone
    assert embedder.views == "image+mirror+smooth" and later["embed_views"] == "image+mirror+smooth"
    four, two = (Embedder(out, precision="float32", views=v).embed(split[:4]["image"], embedder.profile)
                 for v in ("image+mirror+smooth", "image+mirror"))
    np.testing.assert_allclose(four.probs, two.probs, atol=1e-6)
    np.testing.assert_array_equal(four.codes[:, :16], two.codes[:, :16])
    assert np.abs(four.floats[:, 16:] - two.floats[:, 16:]).max() > 1e-4  # float32 agrees to ~1e-7
    # The loss has the instance term when the batch carries pairs
    x, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        plain = model(x, labels=labels).loss
        paired = model(x, labels=labels, pairs=torch.tensor([1, 0, 3, 2])).loss
    assert paired > plain
    with pytest.raises(ValueError, match="--augment robust"):
        train(TrainArgs(dataset=str(shapes_dir), model="tiny", output=str(tmp_path / "n"), instance_weight=0.5,
                        augment="flip"))


@pytest.mark.parametrize("size", [(40, 40), (90, 50), (31, 77), "committed model"])
def test_the_model_cards_recipe_gives_the_apps_vectors(tiny_model, size):
    """The card's code (training.card.RECIPE: transformers' from_pretrained and AutoImageProcessor) computes the
    vectors the app's embedder does, to 1e-4, for square and other pictures, and for the committed demo model (an
    instance head, the smoothed views)."""
    import random
    from pathlib import Path

    from indexer.embedder import Embedder
    from tests.conftest import draw_shape
    from training.card import RECIPE

    model_dir = Path(__file__).parent.parent / "models" / "fmnist-small" if size == "committed model" else tiny_model
    image = draw_shape("circle", random.Random(7)).resize((60, 45) if size == "committed model" else size)
    scope = {"path": str(model_dir), "image": image}
    exec(RECIPE, scope)  # noqa: S102 - the card's own recipe, as a reader would run it
    embedder = Embedder(model_dir, precision="float32")
    emb = embedder.embed([image], embedder.profile)
    assert np.abs(scope["vector"].numpy() - emb.floats[0]).max() < 1e-4
    assert (scope["code"].numpy() == emb.codes[0]).all()
    assert "```python" in (tiny_model / "README.md").read_text() and "AutoImageProcessor" in RECIPE


def test_push_sends_the_model_dir_and_its_card_to_the_hub_standin(tiny_model, monkeypatch, capsys):
    """`python -m training push`, against a stand-in of the Hub's upload API (tests/hub_upload_standin.py: every
    file committed as a regular file; the real Hub stores weights through LFS/Xet, which huggingface_hub handles):
    the repo is created and the dir's weights, configs and card arrive byte for byte, its checkpoints do not."""
    from tests.hub_upload_standin import HubUploadStandIn
    from training.__main__ import main

    hub = HubUploadStandIn(token="hf_standin_token")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False, raising=False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", "hf_standin_token")
    try:
        with pytest.raises(SystemExit) as done:
            main(["push", str(tiny_model), "alice/tiny-shapes", "--private"])
        assert done.value.code == 0, capsys.readouterr().out
        assert "/alice/tiny-shapes/commit/" in capsys.readouterr().out
        assert hub.repos == {"alice/tiny-shapes": {"visibility": "private"}}
        sent = {path: data for (repo, path), data in hub.files.items() if repo == "alice/tiny-shapes"}
        dir_files = {"model.safetensors", "config.json", "preprocessor_config.json", "metrics.json", "README.md"}
        assert dir_files <= set(sent)
        assert sent["model.safetensors"] == (tiny_model / "model.safetensors").read_bytes()
        assert not [p for p in sent if p.startswith("checkpoints")]
        monkeypatch.setenv("HF_TOKEN", "hf_wrong")
        with pytest.raises(SystemExit) as refused:
            main(["push", str(tiny_model), "alice/tiny-shapes"])
        assert refused.value.code == 2 and "check HF_TOKEN" in capsys.readouterr().out
    finally:
        hub.stop()


def test_training_a_finished_run_again_starts_over(shapes_dir, tmp_path):
    """`make model` twice: the second run trains again rather than resuming a run that already reached its epochs."""
    from training.train import TrainArgs, train

    args = dict(dataset=str(shapes_dir), model="tiny", output=str(tmp_path / "m"), bits=16, batch_size=32, epochs=1,
                instance_weight=0.0)
    train(TrainArgs(**args))
    again = train(TrainArgs(**args))
    assert again["resumed_from"] is None and len(list((tmp_path / "m" / "checkpoints").glob("checkpoint-*"))) == 1


def test_a_model_fine_tuned_from_a_model_dir_records_both_stages_in_its_metrics_and_card(shapes_dir, tiny_model,
                                                                                        tmp_path):
    """A model trained in two stages (`make model`: from scratch, then a short fine-tune at a lower rate) tells the
    whole recipe: metrics.json's `stages` and the card name where each stage started, its epochs, rate and time."""
    from training.train import TrainArgs, train

    first = json.loads((tiny_model / "metrics.json").read_text())
    assert [s["model"] for s in first["stages"]] == ["tiny"]
    metrics = train(TrainArgs(dataset=str(shapes_dir), model=str(tiny_model), output=str(tmp_path / "ft"), epochs=1,
                              bits=16, batch_size=32, learning_rate=1e-3, instance_weight=0.0, colour_views=False))
    assert [(s["model"], s["epochs"], s["learning_rate"]) for s in metrics["stages"]] == [
        ("tiny", 12, 5e-3), (str(tiny_model), 1, 1e-3)]
    assert metrics["stages"][0]["train_seconds"] == first["train_seconds"]
    card = (tmp_path / "ft" / "README.md").read_text()
    assert card.startswith("---") and "ConvNeXt (tiny)" in card and "Trained in 2 stages" in card
    assert f"then 1 epoch from `{tiny_model}` at learning rate 0.001" in card and "| epochs | 12 + 1 |" in card


def test_rows_after_the_instance_rows_learn_the_class_terms_only():
    """A batch whose last rows have no partner: the instance term is over the first len(pairs) rows alone, and the
    class terms over every row."""
    from training.model import INSTANCE_TEMPERATURE, build_model, instance_loss, partner_rows

    torch.manual_seed(0)
    model, _ = build_model("tiny", n_bits=16, id2label={0: "a", 1: "b", 2: "c"}, image_size=32,
                           overrides={"instance_dim": 8, "instance_weight": 0.5, "head_dropout": 0.0})
    model.eval()
    x, labels = torch.randn(10, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 0, 1, 2, 0, 1])
    pairs = partner_rows(4)  # rows 0-7 are pairs, rows 8-9 have none
    with torch.no_grad():
        both = model(x, labels=labels, pairs=pairs)
        classes = model(x, labels=labels)
    expected = classes.loss + 0.5 * instance_loss(both.instance[:8], pairs, INSTANCE_TEMPERATURE)
    assert torch.allclose(both.loss, expected, atol=1e-5)
    other = torch.cat([x[:8], torch.randn(2, 3, 32, 32)])
    with torch.no_grad():  # the last rows' pictures change the class terms, never the instance term
        moved, classes_moved = model(other, labels=labels, pairs=pairs), model(other, labels=labels)
    assert not torch.allclose(moved.loss, both.loss)
    assert torch.allclose(moved.loss - classes_moved.loss, both.loss - classes.loss, atol=1e-5)


def test_a_third_view_of_an_image_is_drawn_to_its_first_and_is_no_negative_of_its_others():
    """Two images, two views each, and image 0's view on a surface (partner: image 0's first view). With `views_of`,
    three views of image 0 that agree cost next to nothing; without it the view that is not a row's partner counts as
    a negative as close as the partner. A surface view nearer another image's views costs more."""
    from training.model import instance_loss

    e = torch.eye(4)
    pairs = torch.tensor([2, 3, 0, 1, 0])  # rows: image 0, image 1, image 0, image 1, image 0 on a surface
    views_of = torch.tensor([0, 1, 0, 1, 0])
    agree = torch.stack([e[0], e[1], e[0], e[1], e[0]])
    assert instance_loss(agree, pairs, 0.1, views_of) < 0.01
    assert instance_loss(agree, pairs, 0.1) > 0.4  # log 2 for each of image 0's three rows, over five rows
    astray = torch.stack([e[0], e[1], e[0], e[1], e[1]])
    assert instance_loss(astray, pairs, 0.1, views_of) > instance_loss(agree, pairs, 0.1, views_of) + 1
