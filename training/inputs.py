"""A split as the Trainer reads it: images prepared and preprocessed as at search time (training.prepare.model_input),
decoded once into memory when they fit; and the test split's predictions, over the views the product embeds."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from pathlib import Path

import numpy as np
import torch
from transformers import default_data_collator

from training import analysis as analysis_module
from training import edges as edges_module
from training import images as images_module
from training import prepare as prepare_module
from training import separate as separate_module
from training import shading as shading_module
from training import surfaces as surfaces_module
from training.augment import _augment, _augment_params
from training.model import ConvNextForImageHashing
from training.prepare import ImageProfile, model_input
from training.surfaces import surface_view
from training.views import view_outputs

log = logging.getLogger(__name__)


def accuracy_of(prediction) -> dict:
    """compute_metrics for the Trainer: the classifier's accuracy (the model's outputs are logits, pooled, hash)."""
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    return {"accuracy": float((logits.argmax(-1) == prediction.label_ids).mean())}


def make_transform(size: int, mean, std, augment: str, profile: ImageProfile | None = None):
    shift, erase = _augment_params(size, augment)

    def transform(batch):
        pixels = model_input(batch["image"], profile, size, mean, std)[0]
        if augment not in ("none", "robust"):  # robust: per batch, in RobustCollator
            pixels = torch.stack([_augment(p, shift, erase) for p in pixels])
        return {"pixel_values": pixels, "labels": torch.tensor(batch["label"])}

    return transform


def _surface_chunk(job) -> torch.Tensor:
    """One chunk's surface views (training.surfaces), prepared as at search time, as 0-255 values."""
    images, profile, size, rows, seed = job
    views = [surface_view(im, profile, np.random.default_rng([seed, row]))
             for im, row in zip(images, rows, strict=True)]
    return model_input(views, profile, size, [0, 0, 0], [1 / 255] * 3)[0].round_().to(torch.uint8)


def _surface_views(split, profile: ImageProfile, size: int, seed: int, cache: Path | None) -> torch.Tensor:
    """Every image's surface view, 0-255 [n, 3, size, size], drawn by one process a core; kept in `cache` (a
    folder) when given, so that a stopped run, resumed, does not draw them again."""
    # Keyed by the split (its labels), the size, the seed, the profile and the code that draws and prepares them.
    code = [Path(m.__file__).read_bytes() for m in (surfaces_module, prepare_module, shading_module,
                                                  analysis_module, separate_module, edges_module, images_module)]
    key = hashlib.sha256(json.dumps([list(split["label"]), size, seed, profile.as_dict()]).encode()
                         + b"".join(code)).hexdigest()[:16]
    path = cache / f"surface-views-{key}.pt" if cache is not None else None
    if path is not None and path.is_file():
        log.info("surface views from %s", path)
        return torch.load(path)
    step = 256
    jobs = [(split[i : i + step]["image"], profile, size, range(i, min(i + step, len(split))), seed)
            for i in range(0, len(split), step)]
    workers = min(os.cpu_count() or 1, 8)
    log.info("drawing %d surface views (%d processes)", len(split), workers)
    if workers > 1 and len(jobs) > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            views = torch.cat(pool.map(_surface_chunk, jobs))
    else:
        views = torch.cat([_surface_chunk(job) for job in jobs])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(views, path)
    return views


class DecodedImages(torch.utils.data.Dataset):
    """A split decoded once into one uint8 tensor; augmented and normalised per item.

    Decoding a PNG and converting it at every step would repeat the same work each epoch; decoded once, every
    epoch after the first skips it. With `surfaces` (and a profile), every image also has one view of its object
    lying on a generated surface (training.surfaces), prepared as a photo is: item key `surface_values`, which
    RobustCollator adds to the batch (or, without pairs, swaps in) for a share of the images."""

    def __init__(self, split, size: int, mean, std, augment: str, profile: ImageProfile | None = None,
                 chunk: int = 2048, surfaces: bool = False, seed: int = 0, cache: Path | None = None):
        self.augment = augment
        self.shift, self.erase = _augment_params(size, augment)
        self.pixels = torch.empty((len(split), 3, size, size), dtype=torch.uint8)
        for start in range(0, len(split), chunk):
            images = split[start : start + chunk]["image"]
            # mean 0, std 1/255: the 0-255 values, prepared, resized and converted as at search time.
            self.pixels[start : start + len(images)] = model_input(images, profile, size, [0, 0, 0],
                                                                   [1 / 255] * 3)[0].round_()
        self.surfaces = None
        if surfaces and profile is not None:
            self.surfaces = _surface_views(split, profile, size, seed, cache)
        self.labels = torch.tensor(split["label"])
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1) * 255
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1) * 255

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        x = (self.pixels[i].float() - self.mean) / self.std
        if self.augment not in ("none", "robust"):  # robust: per batch, in RobustCollator
            x = _augment(x, self.shift, self.erase)
        item = {"pixel_values": x, "labels": self.labels[i]}
        if self.surfaces is not None:
            item["surface_values"] = (self.surfaces[i].float() - self.mean) / self.std
        return item


def decoded_or_lazy(split, size: int, mean, std, augment: str, profile: ImageProfile | None = None,
                    max_bytes: int = 2 << 30, surfaces: bool = False, seed: int = 0, cache: Path | None = None):
    """Decode the split into memory when it fits in `max_bytes` (Fashion-MNIST: 141 MB), else transform lazily
    (then without surface views: drawing them costs as much as preparing a photo, at every epoch)."""
    if len(split) * 3 * size * size * (2 if surfaces else 1) <= max_bytes:
        return DecodedImages(split, size, mean, std, augment, profile, surfaces=surfaces, seed=seed, cache=cache)
    if surfaces:
        log.warning("the training set is too large to hold its surface views in memory: training without them")
    return split.with_transform(make_transform(size, mean, std, augment, profile))


def predict_views(model: ConvNextForImageHashing, dataset, views: str, batch_size: int = 256) -> torch.Tensor:
    """Class probabilities of every view of the test images, [n_views, n, classes] (training.views.view_outputs,
    what the embedder averages)."""
    model.eval()
    device = next(model.parameters()).device
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=default_data_collator)
    return torch.cat([view_outputs(model, b["pixel_values"].to(device), views)[2].cpu() for b in loader], dim=1)
