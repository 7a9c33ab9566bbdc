"""A collection's first model, made in seconds from the pretrained backbone alone (no training): what searches a
folder while its own model fine-tunes, and all that a folder without class sub-folders gets.

The model dir is a normal product model (ConvNextForImageHashing, training.model) whose ConvNeXt is the backbone's,
unchanged, so its float vector is the backbone's pooled features. Its hash layer and classifier are set, not
trained, from a sample of the folder's own pictures (prepared as the collection's are):
- codes: the pooled features centred on the sample's mean, projected on its `n_bits` principal directions and
  rotated by a seeded random orthogonal matrix (PCA with a random rotation, Gong & Lazebnik 2011: the rotation
  spreads the variance evenly over the bits), signs as the code;
- classes (a folder with class sub-folders): nearest class mean of those codes (cosine), so the page's predicted
  class means something before any training; a folder without classes has one, `unlabelled`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from training.card import write_model_card
from training.data import label_names, load_image_dataset
from training.model import build_model, processor_size
from training.prepare import model_input, profile_of

log = logging.getLogger(__name__)

SAMPLE = 2000  # pictures of the folder the codes and class means are set from
CLASS_SCALE = 10.0  # logits = CLASS_SCALE × cosine to each class's mean code


def _pooled(net, images, profile, size, mean, std, batch: int = 128) -> torch.Tensor:
    """The backbone's pooled features of `images`, each the mean over it and its mirror, as the embedder computes
    them (indexer.embedder: the backbone was pretrained with flips)."""
    out = []
    with torch.inference_mode():
        for s in range(0, len(images), batch):
            x, _ = model_input(images[s:s + batch], profile, size, mean, std)
            out.append((net.convnext(x).pooler_output + net.convnext(x.flip(-1)).pooler_output) / 2)
    return torch.cat(out)


def code_projection(features: torch.Tensor, n_bits: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight [n_bits, dim], bias [n_bits]) of a hash layer whose signs are the PCA-with-random-rotation codes of
    `features` [n, dim]. Fewer samples or dimensions than bits: a seeded random projection of the centred features."""
    g = torch.Generator().manual_seed(seed)
    centre = features.mean(0)
    x = features - centre
    if min(x.shape) >= n_bits:
        _, _, v = torch.linalg.svd(x, full_matrices=False)
        directions = v[:n_bits]  # [n_bits, dim], orthonormal rows
    else:
        directions = torch.randn(n_bits, x.shape[1], generator=g)
    rotation, _ = torch.linalg.qr(torch.randn(n_bits, n_bits, generator=g))
    weight = rotation @ directions
    weight = weight / (x @ weight.T).std(0).clamp_min(1e-6)[:, None]  # unit spread per bit: tanh stays informative
    return weight, -weight @ centre


def from_backbone(backbone: str, dataset: str, output: str | Path, n_bits: int = 64, sample: int = SAMPLE,
                  seed: int = 0) -> dict:
    """Write `output`, the backbone as a searcher for `dataset` (a folder, with or without class sub-folders);
    returns its metrics (nearest-class-mean accuracy on the test split where there are classes)."""
    start = time.perf_counter()
    ds = load_image_dataset(dataset, seed=seed)
    names = label_names(ds)
    net, processor = build_model(backbone, n_bits=n_bits, id2label=dict(enumerate(names)))
    net.eval()
    size, mean, std = processor_size(processor), processor.image_mean, processor.image_std
    profile = profile_of(ds["train"])
    net.config.image_profile = profile.as_dict() if profile else None
    net.config.embed_views = "image+mirror"
    train = ds["train"].shuffle(seed=seed).select(range(min(sample, len(ds["train"]))))
    pooled = _pooled(net, train["image"], profile, size, mean, std)
    weight, bias = code_projection(pooled, n_bits, seed)
    with torch.no_grad():
        net.hash.weight.copy_(weight)
        net.hash.bias.copy_(bias)
        codes = torch.tanh(net.hash(pooled))
        labels = torch.tensor(train["label"])
        means = torch.stack([codes[labels == c].mean(0) if (labels == c).any() else torch.zeros(n_bits)
                             for c in range(len(names))])
        net.classifier.weight.copy_(F.normalize(means, dim=-1) * CLASS_SCALE if len(names) > 1 else means * 0)
        net.classifier.bias.zero_()
        test_accuracy = chance = None
        if len(names) > 1 and len(ds["test"]):
            test = _pooled(net, ds["test"]["image"], profile, size, mean, std)
            predicted = net.classifier(torch.tanh(net.hash(test))).argmax(-1)
            truth = torch.tensor(ds["test"]["label"])
            test_accuracy = float((predicted == truth).float().mean())
            chance = round(max(truth.bincount().tolist()) / len(truth), 4)  # always guessing the commonest label
    out = Path(output)
    net.save_pretrained(out)
    processor.save_pretrained(out)
    metrics = {"dataset": dataset, "model": backbone, "bits": n_bits, "kind": "backbone, not fine-tuned",
               "test_accuracy": test_accuracy, "chance": chance, "embed_views": "image+mirror",
               "image_profile": net.config.image_profile,
               "sample": len(train), "train_samples": len(ds["train"]), "test_samples": len(ds["test"]),
               "seconds": round(time.perf_counter() - start, 1)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_model_card(out, metrics, names)
    log.info("%s: the backbone %s as a searcher for %s (%d pictures sampled) in %.1f s", out, backbone, dataset,
             len(train), metrics["seconds"])
    return metrics
