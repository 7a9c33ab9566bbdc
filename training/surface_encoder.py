"""A query encoder for photos on real surfaces, trained into its model's own space (`python -m training surfaces`).

A garment photographed on a table, even once preparation has found it, evened its light and shaded it as the
collection's objects are (training.prepare), is a picture the model saw little of. Training the model itself on such
pictures (`--surfaces`) moves every vector of the collection and what it finds for pictures on a flat background.
Here the model stays as it is: a copy of it learns to map each training image's view on a generated surface
(training.surfaces, prepared as a photo is: training.inputs.DecodedImages) to where the model puts the image itself:
its float vector ranked first among every training image's (a softmax over all of them at `temperature`: the
original must come first, as in a search) and near it (`align_weight` × (1 - cosine): a query far from every
stored image is flagged unlike the collection), and its class probabilities (KL). A compatible query encoder, as in
backward-compatible representation learning (Shen et al., CVPR 2020): the collection is not indexed again.

It is saved as `surface/` in the model dir, tied to the model's weights (`surface_encoder_for`: their sha256), with
its metrics (the original among the test split's images, found from test images' surface views by the model and by
the encoder). The embedder (indexer.embedder) runs it on the pictures preparation found on a surface, the model on
all others; SURFACE_ENCODER=0 turns it off. Stopped, it resumes from its last epoch (in --work).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from training import config
from training.augment import PAIR_AUGMENT, robust_augment
from training.data import load_image_dataset
from training.inputs import DecodedImages
from training.model import processor_size, retrieval_features
from training.modeldir import SURFACE_DIR, fingerprint, load_model
from training.prepare import ImageProfile
from training.views import embed_outputs

log = logging.getLogger(__name__)


@dataclass
class SurfaceArgs:
    model: str = field(default_factory=lambda: config.default("model"),
                       metadata={"help": "the model dir (with an image profile) whose queries on surfaces the encoder "
                                 "learns to embed; the encoder is written to its surface/ ($MODEL_DIR)"})
    dataset: str = field(default_factory=lambda: config.default("dataset"),
                         metadata={"help": "the model's training data ($DATASET): its train split is learnt from"})
    work: str | None = field(default=None, metadata={
        "help": "checkpoints and the drawn surface views (default: data/<model>-surface); a stopped run resumes"})
    epochs: int = 24
    learning_rate: float = 2e-4
    batch_size: int = 128
    temperature: float = field(default=0.02, metadata={"help": "of the softmax over the training images' vectors"})
    align_weight: float = field(default=40.0, metadata={
        "help": "weight of 1 - cosine to the image's own vector: the original near, not only nearer than the rest "
                "(a query far from every stored image is flagged unlike the collection)"})
    eval_images: int = field(default=1000, metadata={"help": "test images whose surface views measure the encoder"})
    max_train_samples: int = 0
    seed: int = 0


def load_surface_encoder(model_dir: Path, weights: str):
    """The model dir's surface encoder, or None: when it has none, when SURFACE_ENCODER=0, or when the encoder was
    trained for other weights than the model's (`weights`, their sha256: the model retrained since; a warning says
    to train it again)."""
    path = Path(model_dir) / SURFACE_DIR
    if not config.surface_encoder_enabled() or not (path / "model.safetensors").is_file():
        return None
    encoder, _ = load_model(path)
    if getattr(encoder.config, "surface_encoder_for", None) != weights:
        log.warning("%s was trained for other weights than %s's: not used (train it again: python -m training "
                    "surfaces --model %s)", path, model_dir, model_dir)
        return None
    return encoder


def _normalised(pixels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (pixels.float() - mean) / std


def _targets(model, pixels: torch.Tensor, mean, std, views: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's float vectors and class probabilities of `pixels` (0-255), as the embedder computes them."""
    floats, probs = [], []
    for start in range(0, len(pixels), 256):
        f, _, p = embed_outputs(model, _normalised(pixels[start : start + 256], mean, std), views)
        floats.append(f)
        probs.append(p)
    return torch.cat(floats), torch.cat(probs)


def found_in_top5(model, views: str, surface_pixels: torch.Tensor, floats: torch.Tensor, mean, std) -> float:
    """The share of surface views (0-255) whose own image's vector (`floats`, row for row) is among the 5 nearest."""
    queries, _ = _targets(model, surface_pixels, mean, std, views)
    sims = queries @ floats.T
    own = sims.diagonal().unsqueeze(1)
    return float(((sims > own).sum(1) < 5).float().mean())


def _epoch(student, views, floats, probs, background, optimiser, schedule, args: SurfaceArgs, mean, std) -> float:
    student.train()
    order = torch.randperm(len(floats))
    total = 0.0
    for start in range(0, len(order), args.batch_size):
        rows = order[start : start + args.batch_size]
        x = robust_augment(_normalised(views[rows], mean, std), background, **PAIR_AUGMENT)
        out = student(x)
        f = F.normalize(retrieval_features(student.config, out), dim=-1)
        rank = F.cross_entropy(f @ floats.T / args.temperature, rows)
        align = 1 - (f * floats[rows]).sum(-1).mean()
        kl = F.kl_div(F.log_softmax(out.logits.float(), -1), probs[rows], reduction="batchmean")
        loss = rank + args.align_weight * align + kl
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        total += loss.item() * len(rows)
    return total / len(order)


def _views(split, size: int, profile: ImageProfile, seed: int, cache: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A split's images prepared (0-255) and their views on generated surfaces (drawn once, kept in `cache`)."""
    decoded = DecodedImages(split, size, [0, 0, 0], [1, 1, 1], "none", profile, surfaces=True, seed=seed, cache=cache)
    return decoded.pixels, decoded.surfaces


def train_surface_encoder(args: SurfaceArgs) -> dict:
    """Train the model dir's surface encoder (see the module's docstring); returns its metrics."""
    torch.manual_seed(args.seed)
    model_dir = Path(args.model)
    teacher, processor = load_model(model_dir)
    profile = ImageProfile.from_dict(getattr(teacher.config, "image_profile", None))
    if profile is None:
        raise ValueError(f"{model_dir} was trained without preparation (no image profile): its queries are not "
                         "prepared, so none is found on a surface")
    views = getattr(teacher.config, "embed_views", "image")
    size = processor_size(processor)
    mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(processor.image_std).view(1, 3, 1, 1) * 255
    work = Path(args.work or f"data/{model_dir.name}-surface")
    ds = load_image_dataset(args.dataset, seed=args.seed)
    train = ds["train"].shuffle(seed=args.seed).select(range(args.max_train_samples)) if args.max_train_samples \
        else ds["train"]
    test = ds["test"].select(range(min(args.eval_images, len(ds["test"]))))
    pixels, surface = _views(train, size, profile, args.seed, work)
    test_pixels, test_surface = _views(test, size, profile, args.seed + 1, work)
    floats, probs = _targets(teacher, pixels, mean, std, views)
    test_floats, _ = _targets(teacher, test_pixels, mean, std, views)
    background = (torch.tensor(profile.background) - mean.view(3)) / std.view(3)
    student, _ = load_model(model_dir)
    optimiser = torch.optim.AdamW(student.parameters(), lr=args.learning_rate, weight_decay=0.05)
    steps = args.epochs * -(-len(floats) // args.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, args.learning_rate, total_steps=steps, pct_start=0.05)
    state, first, losses = work / "checkpoint.pt", 0, []
    if state.is_file():  # weights, optimiser and schedule state only: tensors and numbers, never objects
        saved = torch.load(state, weights_only=True)
        if saved["args"] == asdict(args):
            student.load_state_dict(saved["student"])
            optimiser.load_state_dict(saved["optimiser"])
            schedule.load_state_dict(saved["schedule"])
            first, losses = saved["epoch"], saved["losses"]
            log.info("resuming after epoch %d from %s", first, state)
    started = time.time()
    for epoch in range(first, args.epochs):
        losses.append(_epoch(student, surface, floats, probs, background, optimiser, schedule, args, mean, std))
        log.info("epoch %d: loss %.4f", epoch + 1, losses[-1])
        torch.save({"args": asdict(args), "epoch": epoch + 1, "losses": losses, "student": student.state_dict(),
                    "optimiser": optimiser.state_dict(), "schedule": schedule.state_dict()}, state)
    student.eval()
    metrics = {
        "model": str(model_dir), "dataset": args.dataset, "train_images": len(floats), "epochs": args.epochs,
        "train_seconds": round(time.time() - started, 1), "losses": [round(v, 4) for v in losses],
        "eval_images": len(test_floats),
        "original_in_top5_model": round(found_in_top5(teacher, views, test_surface, test_floats, mean, std), 4),
        "original_in_top5_encoder": round(found_in_top5(student, views, test_surface, test_floats, mean, std), 4),
        "args": asdict(args),
    }
    out = model_dir / SURFACE_DIR
    student.config.surface_encoder_for = fingerprint(model_dir)
    student.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log.info("surface encoder written to %s: %s", out, {k: v for k, v in metrics.items() if k != "args"})
    return metrics
