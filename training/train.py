"""Fine-tune (or train from scratch) a ConvNeXt hashing model on a labelled image dataset.

The whole recipe in one file, in the shape of transformers' run_image_classification.py: dataclass
arguments, `datasets` transforms applied lazily, `Trainer` for the loop, `save_pretrained` at the end.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainingArguments, default_data_collator, set_seed
from transformers.trainer_utils import get_last_checkpoint

from training.data import label_names, load_image_dataset
from training.model import (
    PRESETS,
    ConvNextForImageHashing,
    build_model,
    preprocess,
    processor_size,
    resolve_precision,
    view_outputs,
)

log = logging.getLogger(__name__)


@dataclass
class TrainArgs:
    dataset: str = field(default="fashion_mnist", metadata={"help": "Hub id, image folder, or fashion_mnist"})
    model: str = field(
        default="fmnist-small",
        metadata={"help": f"a preset to train from scratch ({', '.join(PRESETS)}) or a checkpoint to fine-tune, "
                  "e.g. facebook/convnext-tiny-224"},
    )
    output: str = field(default="models/fmnist-small", metadata={"help": "model dir to write"})
    epochs: float = 12
    bits: int = field(default=64, metadata={"help": "length of the binary code"})
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    warmup_ratio: float = 0.05
    image_size: int | None = field(default=None, metadata={"help": "input size; default: the model's"})
    augment: str = field(
        default="flip",
        metadata={"help": "training augmentation: none, flip (random horizontal flips), flip+shift (and random "
                  "shifts of 1/14 of the size), flip+shift+erase (and random erasing). For larger models and "
                  "longer runs; on Fashion-MNIST the small model does best with flips: 3 epochs of 15k images, "
                  "0.75 with shifts vs 0.85; 12 epochs, flip+shift 0.896 vs 0.917 with flips; 15 epochs, "
                  "flip+shift+erase 0.900)"},
    )
    config_overrides: str = field(
        default="",
        metadata={"help": "JSON object of config values set on top of the model's, e.g. "
                  "'{\"hidden_sizes\": [48, 96, 192], \"head_dropout\": 0.2}' (see training.model.build_model)"},
    )
    precision: str = field(
        default="float32",
        metadata={"help": "float32, bfloat16 (autocast; weights stay float32) or auto: bfloat16 where the hardware "
                  "runs it natively (a recent GPU, a CPU with AVX-512 BF16 or AMX). bfloat16 trains the demo model "
                  "1.4x faster on this CPU, but its 12-epoch runs reached 0.913-0.915 accuracy vs 0.917"},
    )
    seed: int = 0
    max_train_samples: int | None = None
    max_test_samples: int | None = None
    resume: bool = field(default=True, metadata={"help": "continue from the last checkpoint in <output>/checkpoints"})


def _augment(x: torch.Tensor, shift: int, erase: bool = False) -> torch.Tensor:
    """Random horizontal flip, a random shift of up to `shift` px (edge-padded), and with `erase` random erasing
    (Zhong et al. 2017: half the time, a rectangle of 2-40 % of the image, aspect 0.3-3.3, filled with noise)."""
    if torch.rand(()) < 0.5:
        x = x.flip(-1)
    if shift > 0:
        size = x.shape[-1]
        padded = F.pad(x.unsqueeze(0), (shift,) * 4, mode="replicate")[0]
        dx, dy = torch.randint(0, 2 * shift + 1, (2,)).tolist()
        x = padded[:, dy : dy + size, dx : dx + size]
    if erase and torch.rand(()) < 0.5:
        _, h, w = x.shape
        area = h * w * float(torch.empty(()).uniform_(0.02, 0.4))
        aspect = float(torch.empty(()).uniform_(-1.2, 1.2).exp())
        eh, ew = min(h, max(1, round((area * aspect) ** 0.5))), min(w, max(1, round((area / aspect) ** 0.5)))
        top, left = torch.randint(0, h - eh + 1, ()).item(), torch.randint(0, w - ew + 1, ()).item()
        x = x.clone()
        x[:, top : top + eh, left : left + ew] = torch.empty((x.shape[0], eh, ew)).uniform_(-1, 1)
    return x


AUGMENTATIONS = ("none", "flip", "flip+shift", "flip+shift+erase")


def _augment_params(size: int, augment: str) -> tuple[int, bool]:
    """(shift in px, erase) for an `augment` name; the shift is 1/14 of the size (2 px at 28)."""
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {', '.join(AUGMENTATIONS)}, not {augment!r}")
    return (max(1, size // 14) if "shift" in augment else 0), augment.endswith("+erase")


def make_transform(size: int, mean, std, augment: str):
    shift, erase = _augment_params(size, augment)

    def transform(batch):
        pixels = preprocess(batch["image"], size, mean, std)
        if augment != "none":
            pixels = torch.stack([_augment(p, shift, erase) for p in pixels])
        return {"pixel_values": pixels, "labels": torch.tensor(batch["label"])}

    return transform


class DecodedImages(torch.utils.data.Dataset):
    """A split decoded once into one uint8 tensor; augmented and normalised per item.

    Decoding a PNG and converting it per step was 15 % of a Fashion-MNIST training step (25 of 160 ms a
    batch of 128); decoded, every epoch after the first skips it."""

    def __init__(self, split, size: int, mean, std, augment: str, chunk: int = 2048):
        self.augment = augment
        self.shift, self.erase = _augment_params(size, augment)
        self.pixels = torch.empty((len(split), 3, size, size), dtype=torch.uint8)
        for start in range(0, len(split), chunk):
            images = split[start : start + chunk]["image"]
            # preprocess with mean 0, std 1/255 returns the 0-255 values, resized and converted like at search time.
            self.pixels[start : start + len(images)] = preprocess(images, size, [0, 0, 0], [1 / 255] * 3).round_()
        self.labels = torch.tensor(split["label"])
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1) * 255
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1) * 255

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        x = (self.pixels[i].float() - self.mean) / self.std
        if self.augment != "none":
            x = _augment(x, self.shift, self.erase)
        return {"pixel_values": x, "labels": self.labels[i]}


def decoded_or_lazy(split, size: int, mean, std, augment: str, max_bytes: int = 2 << 30):
    """Decode the split into memory when it fits in `max_bytes` (Fashion-MNIST: 141 MB), else transform lazily."""
    if len(split) * 3 * size * size <= max_bytes:
        return DecodedImages(split, size, mean, std, augment)
    return split.with_transform(make_transform(size, mean, std, augment))


def predict_views(model: ConvNextForImageHashing, dataset, views: str, batch_size: int = 256) -> torch.Tensor:
    """Class probabilities of every view of the test images, [n_views, n, classes] (training.model.view_outputs,
    what the embedder averages)."""
    model.eval()
    device = next(model.parameters()).device
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=default_data_collator)
    return torch.cat([view_outputs(model, b["pixel_values"].to(device), views)[2].cpu() for b in loader], dim=1)


def parse_overrides(text: str) -> dict:
    if not text:
        return {}
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--config_overrides must be a JSON object like '{{\"head_dropout\": 0.2}}' ({e})") from None
    if not isinstance(overrides, dict):
        raise ValueError(f"--config_overrides must be a JSON object of config values, not {type(overrides).__name__}")
    return overrides


def train(args: TrainArgs) -> dict:
    precision = training_precision(args.precision)  # refuse a wrong name before loading anything
    set_seed(args.seed)
    out = Path(args.output)
    ds = load_image_dataset(args.dataset, seed=args.seed)
    if args.max_train_samples:
        ds["train"] = ds["train"].shuffle(seed=args.seed).select(range(min(args.max_train_samples, len(ds["train"]))))
    if args.max_test_samples:
        ds["test"] = ds["test"].select(range(min(args.max_test_samples, len(ds["test"]))))
    names = label_names(ds)
    model, processor = build_model(
        args.model, n_bits=args.bits, id2label=dict(enumerate(names)), image_size=args.image_size,
        overrides=parse_overrides(args.config_overrides),
    )
    size, mean, std = processor_size(processor), processor.image_mean, processor.image_std
    train_ds = decoded_or_lazy(ds["train"], size, mean, std, args.augment)
    test_ds = decoded_or_lazy(ds["test"], size, mean, std, "none")

    ckpt_dir = out / "checkpoints"
    targs = _training_arguments(args, ckpt_dir, precision)
    trainer = Trainer(model=model, args=targs, train_dataset=train_ds)
    last = get_last_checkpoint(str(ckpt_dir)) if args.resume and ckpt_dir.is_dir() else None
    if last:
        log.info("resuming from %s", last)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=last)
    train_seconds = time.perf_counter() - start

    # Accuracy as the product will see it: a model trained on mirrored images embeds (and classifies) an image as
    # the mean over it and its mirror (indexer.embedder), which training records in the config.
    model.config.embed_views = "image" if args.augment == "none" else "image+mirror"
    labels = torch.tensor(ds["test"]["label"])
    probs = predict_views(model, test_ds, model.config.embed_views)
    single_view = float((probs[0].argmax(-1) == labels).float().mean())
    accuracy = float((probs.mean(0).argmax(-1) == labels).float().mean())

    model.save_pretrained(out)
    processor.save_pretrained(out)
    metrics = {
        "dataset": args.dataset,
        "model": args.model,
        "bits": args.bits,
        "test_accuracy": accuracy,
        "test_accuracy_single_view": single_view,
        "embed_views": model.config.embed_views,
        "train_samples": len(ds["train"]),
        "test_samples": len(ds["test"]),
        "epochs": args.epochs,
        "train_seconds": round(train_seconds, 1),
        "resumed_from": last,
        "precision": precision,
        "parameters": sum(p.numel() for p in model.parameters()),
        "args": asdict(args),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_model_card(out, metrics, names)
    return metrics


def training_precision(precision: str) -> str:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return resolve_precision(precision, device, "--precision", "bfloat16 is autocast; auto picks it where native")


def _training_arguments(args: TrainArgs, ckpt_dir: Path, precision: str) -> TrainingArguments:
    return TrainingArguments(
        bf16=precision == "bfloat16",
        use_cpu=precision == "bfloat16" and not torch.cuda.is_available(),  # Trainer's bf16 wants it on CPU
        output_dir=str(ckpt_dir),
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=max(256, args.batch_size),
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_ratio,
        lr_scheduler_type="cosine",
        save_strategy="epoch",
        save_total_limit=1,
        eval_strategy="no",
        logging_steps=50,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        report_to="none",
        seed=args.seed,
    )


def write_model_card(out: Path, metrics: dict, names: list[str]) -> None:
    card = f"""---
library_name: transformers
pipeline_tag: image-feature-extraction
tags: [convnext, image-retrieval, deep-hashing]
---
# {out.name}

ConvNeXt ({metrics['model']}) with a {metrics['bits']}-bit hash layer, trained on `{metrics['dataset']}`
for image search: pooled features are the float vector (cosine), the signs of the hash layer the binary
code (Hamming distance).

| metric | value |
|---|---|
| test accuracy | {metrics['test_accuracy']:.4f} |
| test accuracy, one view | {metrics['test_accuracy_single_view']:.4f} |
| embedding views | {metrics['embed_views']} |
| train samples | {metrics['train_samples']} |
| epochs | {metrics['epochs']} |
| training time (s) | {metrics['train_seconds']} |
| parameters | {metrics['parameters']:,} |

Labels: {', '.join(names)}.

Load with `ConvNextForImageHashing.from_pretrained(path)` from this project's `training.model`; the
backbone alone loads as `ConvNextModel` (`pipeline("image-feature-extraction", model=path)`).
"""
    (out / "README.md").write_text(card)
