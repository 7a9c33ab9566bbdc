"""The generic backbone (training/pretrain.py): pretrained self-supervised, saved as a normal transformers ConvNeXt
dir, resumed when stopped, and the starting point a model fine-tunes from. Tiny sizes, on generated pictures."""

import json

import torch
from transformers import AutoModel, ConvNextModel

from training.model import build_model
from training.pretrain import PretrainArgs, collate_pairs, pretrain


def test_views_of_a_picture_differ_and_pair_up(shapes_dir):
    from training.corpora import load_corpora

    pictures = torch.from_numpy(load_corpora(32, [str(shapes_dir)], per_source=8)).permute(0, 3, 1, 2)
    batch = collate_pairs([{"rgba": p} for p in pictures])
    assert batch["pixel_values"].shape == (16, 3, 32, 32)
    assert batch["pairs"].tolist() == list(range(8, 16)) + list(range(8))
    assert not torch.allclose(batch["pixel_values"][:8], batch["pixel_values"][8:])  # two views, not one twice
    assert batch["pixel_values"].min() >= -1 and batch["pixel_values"].max() <= 1


def test_pretraining_writes_a_transformers_backbone_that_resumes_and_fine_tunes(shapes_dir, tmp_path):
    out = tmp_path / "backbone"
    args = dict(output=str(out), sources=str(shapes_dir), per_source=64, image_size=32, batch_size=16, save_steps=2)
    first = pretrain(PretrainArgs(**args, epochs=1))
    assert first["pictures"] == 64 and first["resumed_from"] is None and first["steps"] == 4
    backbone = AutoModel.from_pretrained(out)
    assert isinstance(backbone, ConvNextModel) and next(backbone.parameters()).dtype == torch.float16
    card = (out / "README.md").read_text()
    assert "python -m training pretrain" in card and "instance discrimination" in card
    assert json.loads((out / "metrics.json").read_text())["steps"] == 4
    # every checkpoint carries the image processor too (bench/clipart.py can measure a run still going)
    assert all((c / "preprocessor_config.json").is_file() for c in (out / "checkpoints").glob("checkpoint-*"))
    more = pretrain(PretrainArgs(**args, epochs=2))  # a longer run goes on from the last checkpoint
    assert more["resumed_from"] and more["steps"] == 8
    # fine-tuning starts from its weights, in float32, with a new hash layer and classifier
    net, processor = build_model(str(out), n_bits=16, id2label={0: "a", 1: "b"})
    again = AutoModel.from_pretrained(out, dtype=torch.float32)
    assert next(net.parameters()).dtype == torch.float32
    assert torch.equal(net.convnext.embeddings.patch_embeddings.weight, again.embeddings.patch_embeddings.weight)
    assert net.classifier.out_features == 2 and processor.size["shortest_edge"] == 32


def test_a_second_stage_starts_from_a_backbones_weights_and_its_card_says_how(shapes_dir, tmp_path):
    args = dict(sources=str(shapes_dir), per_source=32, image_size=32, batch_size=16, save_steps=2, epochs=1)
    pretrain(PretrainArgs(output=str(tmp_path / "first"), **args))
    first = AutoModel.from_pretrained(tmp_path / "first")
    # at learning rate 0 a second stage keeps the weights it started from: they are the first stage's, not new ones
    kept = pretrain(PretrainArgs(output=str(tmp_path / "kept"), init=str(tmp_path / "first"), learning_rate=0.0,
                                 **args))
    assert kept["resumed_from"] is None and kept["args"]["init"] == str(tmp_path / "first")
    second = AutoModel.from_pretrained(tmp_path / "kept")
    weights, again = first.state_dict(), second.state_dict()
    assert weights.keys() == again.keys() and all(torch.equal(weights[k], again[k]) for k in weights)
    fresh = AutoModel.from_pretrained(pretrain(PretrainArgs(output=str(tmp_path / "fresh"), learning_rate=0.0,
                                                            **args))["args"]["output"])
    assert not torch.equal(fresh.embeddings.patch_embeddings.weight, first.embeddings.patch_embeddings.weight)
    card = (tmp_path / "kept" / "README.md").read_text()
    assert f"--init {tmp_path / 'first'} --epochs 1 --learning_rate 0" in card
    assert kept["first_stage"]["steps"] == 2 and "then a second stage of 2 steps" in card
    # a third stage from the second: its card gives all three runs and the three commands, each from the one before
    pretrain(PretrainArgs(output=str(tmp_path / "third"), init=str(tmp_path / "kept"), **args))
    card = " ".join((tmp_path / "third" / "README.md").read_text().split())
    assert "then a second stage of 2 steps" in card and "from the second one's weights" in card
    assert (f"--output {tmp_path / 'kept'} --init {tmp_path / 'first'} --epochs 1 --learning_rate 0`, then `python -m "
            f"training pretrain --output {tmp_path / 'third'} --init {tmp_path / 'kept'} --epochs 1") in card


def test_an_outline_view_keeps_only_the_edges_of_a_filled_shape():
    from training.augment import outlines

    x = torch.full((1, 3, 32, 32), 0.9)
    x[:, :, 8:24, 8:24] = torch.tensor([0.8, 0.1, 0.1]).view(1, 3, 1, 1)  # a red square on near-white
    ink, paper = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1), torch.tensor([0.9, 0.8, 0.7]).view(1, 3, 1, 1)
    lines = outlines(x, ink, paper)[0]
    inside, outside, edge = lines[:, 16, 16], lines[:, 2, 2], lines[:, 16, 8]
    assert torch.equal(inside, paper.view(3)) and torch.equal(outside, paper.view(3))  # the fill is gone
    assert torch.equal(edge, ink.view(3))  # ink along the edge
    assert torch.equal(lines[:, 0, :], outside.view(3, 1).expand(3, 32))  # and no line along the frame


def test_a_folders_second_views_are_drawn_as_outlines_in_the_collections_ink_on_its_background():
    """RobustCollator with `outline`: the first view of a filled square keeps its fill, its partner (the second
    view) is the square's outline: the centre is background again, the rim in ink."""
    from training.augment import RobustCollator

    bg, ink = torch.ones(3), -torch.ones(3)  # normalised white and black
    x = bg.view(3, 1, 1).repeat(1, 32, 32)
    x[:, 6:26, 6:26] = torch.tensor([0.6, -0.8, -0.8]).view(3, 1, 1)  # a red square on white
    collator = RobustCollator(bg, pairs=True, outline=1.0, ink=ink)
    batch = collator([{"pixel_values": x, "labels": 0} for _ in range(16)])
    first, second = batch["pixel_values"][:16], batch["pixel_values"][16:]
    centre = (slice(None), slice(None), slice(14, 18), slice(14, 18))
    red = lambda v: (v[:, 0] - v[:, 1]).mean((1, 2))  # noqa: E731 (how red the centre is)
    assert (red(first[centre]) > 0.3).all()
    assert (second[centre].mean((1, 2, 3)) - 1).abs().amax() < 0.1  # outlines only: the fill is gone
    assert second.amin((1, 2, 3)).amax() < 0.5  # and every one has its lines (the background is 1)
    assert batch["pairs"].tolist() == list(range(16, 32)) + list(range(16))
    plain = RobustCollator(bg, pairs=True)([{"pixel_values": x, "labels": 0} for _ in range(16)])
    assert (red(plain["pixel_values"][16:][centre]) > 0.3).all()  # without `outline`, filled as the first


def _icon(path, colour):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGBA", (48, 48), colour).save(path)


def test_pretraining_reads_only_its_own_icon_themes_and_the_style_bench_counts_an_alias_once(tmp_path, monkeypatch):
    """Themes installed later (bench/styles.py's) never enter pretraining; an icon that is another's alias (a link to
    the same file) is one picture of the style bench's collection, found under both names."""
    import sys
    from pathlib import Path

    from training.corpora import _icon_files

    _icon(tmp_path / "Adwaita/48x48/apps/editor.png", (200, 0, 0, 255))
    _icon(tmp_path / "gnome/48x48/apps/editor.png", (0, 200, 0, 255))
    _icon(tmp_path / "gnome/48x48/places/folder.png", (0, 0, 200, 255))
    _icon(tmp_path / "gnome/16x16/places/folder.png", (0, 0, 90, 255))  # too small: the 48 px one is kept
    (tmp_path / "gnome/48x48/places/directory.png").symlink_to(tmp_path / "gnome/48x48/places/folder.png")
    assert _icon_files(tmp_path) == [tmp_path / "Adwaita/48x48/apps/editor.png"]

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import bench.styles as styles

    monkeypatch.setattr(styles, "ICONS", tmp_path)
    files, contexts, row = styles.unique(styles.icons("gnome"))
    assert len(files) == 2 and sorted(contexts) == ["apps", "places"]
    assert row["directory"] == row["folder"] != row["editor"]
    assert files[row["folder"]] == (tmp_path / "gnome/48x48/places/folder.png").resolve()
