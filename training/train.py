"""Fine-tune (or train from scratch) a ConvNeXt hashing model on a labelled image dataset.

The whole recipe in one file, in the shape of transformers' run_image_classification.py: dataclass
arguments, `datasets` transforms applied lazily, `Trainer` for the loop, `save_pretrained` at the end.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainingArguments, default_data_collator, set_seed
from transformers.trainer_utils import get_last_checkpoint

from training import config
from training.data import UNLABELLED, label_names, load_image_dataset
from training.images import ImageProfile, model_input, profile_of
from training.model import (
    INSTANCE_DIM,
    PRESETS,
    ConvNextForImageHashing,
    build_model,
    partner_rows,
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
    output: str = field(default_factory=lambda: config.default("model"),
                        metadata={"help": "model dir to write ($MODEL_DIR, which the app and the indexer read)"})
    epochs: float | None = field(
        default=None, metadata={"help": "default: chosen from the training set's size (auto_schedule)"})
    bits: int = field(default=64, metadata={"help": "length of the binary code"})
    batch_size: int | None = field(
        default=None, metadata={"help": "default: chosen from the training set's size (auto_schedule)"})
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    warmup_ratio: float = 0.05
    image_size: int | None = field(default=None, metadata={"help": "input size; default: the model's"})
    augment: str = field(
        default="robust",
        metadata={"help": "training augmentation: none; flip (random horizontal flips); flip+shift (and random "
                  "shifts of 1/14 of the size); flip+shift+erase (and random erasing); robust (flips, and for half "
                  "the images each a small rotation, scale and shift padded with the background, a contrast change, "
                  "a blur: what preparing a person's photo leaves; README: \"Your photos\")"},
    )
    prepare: bool = field(
        default=True,
        metadata={"help": "prepare every image like the collection's (training.images.prepare) with the training "
                  "set's image profile, recorded in the model's config"},
    )
    config_overrides: str = field(
        default="",
        metadata={"help": "JSON object of config values set on top of the model's, e.g. "
                  "'{\"hidden_sizes\": [48, 96, 192], \"head_dropout\": 0.2}' (see training.model.build_model)"},
    )
    precision: str = field(
        default="float32",
        metadata={"help": "float32, bfloat16 (autocast; weights stay float32) or auto: bfloat16 where the hardware "
                  "runs it natively (a recent GPU, a CPU with AVX-512 BF16 or AMX); README: \"Your own images\" says "
                  "what it changed for the demo model"},
    )
    instance_weight: float = field(
        default=0.0,
        metadata={"help": "> 0: add an instance head (training.model) and train on two augmented views of every image "
                  "(rotation, scale, shift, an edge cut and re-framed, contrast, blur, noise), each view's nearest "
                  "among the batch's views to be its partner, with this weight in the loss: the float vector then "
                  "finds a changed picture's very image more often (README: \"Your photos\"); a step costs twice "
                  "the compute"},
    )
    validation: float = field(
        default=0.0,
        metadata={"help": "share of the training set held out to pick the best epoch: evaluated after each epoch "
                  "(accuracy logged), and the best checkpoint kept; 0: none, the last epoch is the model"},
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


AUGMENTATIONS = ("none", "flip", "flip+shift", "flip+shift+erase", "robust")


def _augment_params(size: int, augment: str) -> tuple[int, bool]:
    """(shift in px, erase) for an `augment` name; the shift is 1/14 of the size (2 px at 28)."""
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {', '.join(AUGMENTATIONS)}, not {augment!r}")
    return (max(1, size // 14) if "shift" in augment else 0), augment.endswith("+erase")


def robust_augment(x: torch.Tensor, background: torch.Tensor, p: float = 0.5, rotate: float = 10.0,
                   scale: tuple[float, float] = (0.85, 1.1), shift: float = 1 / 28,
                   contrast: tuple[float, float] = (0.6, 1.3), blur: tuple[float, float] = (0.45, 0.85),
                   noise: float = 0.0, cut: float = 0.0) -> torch.Tensor:
    """A batch [n, 3, s, s] of normalised, prepared images as a person's photo may still differ after preparation:
    mirrored half the time; and each with probability `p`: rotated by up to ±`rotate`°, scaled and shifted by up to
    `shift` of the size (the background, [3] normalised, fills what comes into view), its contrast against the
    background changed; with probability `p`/2 blurred (down- and up-sampled by a factor in `blur`: a small object
    enlarged) and, where `noise` > 0, given Gaussian noise of a standard deviation up to `noise`. Where `cut` > 0,
    the geometric change first cuts up to `cut` of the size off one side and one end (the background takes their
    place) and enlarges the rest to the frame again: how preparation frames an object that a picture's edge cut off."""
    n, _, size, _ = x.shape
    bg = background.view(1, 3, 1, 1).to(x)
    flip = torch.rand(n) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
    geo = torch.rand(n) < p
    if geo.any():
        m = int(geo.sum())
        angle = torch.empty(m).uniform_(-rotate, rotate).deg2rad()
        s = torch.empty(m).uniform_(*scale)
        t = torch.empty(m, 2).uniform_(-2 * shift, 2 * shift)  # grid coordinates span 2
        theta = torch.stack([torch.stack([angle.cos() / s, -angle.sin() / s, t[:, 0]], -1),
                             torch.stack([angle.sin() / s, angle.cos() / s, t[:, 1]], -1)], 1)
        inner = x[geo] - bg
        if cut > 0:  # grid coordinates: what is left spans [-1 + 2k, 1] (cut at -1) or [-1, 1 - 2k] (cut at 1)
            k = torch.empty(m, 2).uniform_(0, cut)
            side = torch.randint(0, 2, (m, 2)) * 2 - 1.0
            pixel = (torch.arange(size) * 2 + 1) / size - 1
            keep_x = pixel.view(1, -1) * side[:, :1] <= 1 - 2 * k[:, :1]  # [m, size] columns
            keep_y = pixel.view(1, -1) * side[:, 1:] <= 1 - 2 * k[:, 1:]  # rows
            inner = inner * (keep_y[:, :, None] & keep_x[:, None, :]).unsqueeze(1)
            theta = (1 - k).unsqueeze(-1) * theta  # re-framed: input = centre + (1 - k) · (A u + t)
            theta[:, :, 2] -= side * k
        grid = F.affine_grid(theta, [m, 3, size, size], align_corners=False)
        x = x.clone()
        x[geo] = F.grid_sample(inner, grid, padding_mode="zeros", align_corners=False) + bg
    tone = torch.rand(n) < p
    if tone.any():
        c = torch.ones(n).index_put_((tone.nonzero()[:, 0],), torch.empty(int(tone.sum())).uniform_(*contrast))
        x = bg + c.view(n, 1, 1, 1) * (x - bg)
    soft = torch.rand(n) < p / 2
    if soft.any():
        small = max(4, round(size * float(torch.empty(()).uniform_(*blur))))
        down = F.interpolate(x[soft], size=small, mode="bilinear", antialias=True, align_corners=False)
        x = x.clone()
        x[soft] = F.interpolate(down, size=size, mode="bilinear", align_corners=False)
    noisy = torch.rand(n) < p / 2 if noise > 0 else torch.zeros(n, dtype=torch.bool)
    if noisy.any():
        sigma = torch.zeros(n).index_put_((noisy.nonzero()[:, 0],), torch.empty(int(noisy.sum())).uniform_(0, noise))
        x = x + sigma.view(n, 1, 1, 1) * torch.randn_like(x)
    return x


PAIR_AUGMENT = dict(p=0.8, noise=0.2, cut=0.1)  # robust_augment for the two views of an image (--instance-weight)


class RobustCollator:
    """default_data_collator, then `robust_augment` on the whole batch (one vectorised pass), while `model` trains
    (the Trainer collates validation batches with it too, with the model in eval mode: those stay as they are).

    `pairs`: two views of every image instead (PAIR_AUGMENT), the batch's rows [views 1; views 2], with `pairs`
    giving each row its partner's (the instance term, training.model.instance_loss)."""

    def __init__(self, background: torch.Tensor, model: torch.nn.Module | None = None, pairs: bool = False):
        self.background, self.model, self.pairs = background, model, pairs

    def __call__(self, features: list[dict]) -> dict:
        batch = default_data_collator(features)
        if self.model is not None and not self.model.training:
            return batch
        x = batch["pixel_values"]
        if not self.pairs:
            batch["pixel_values"] = robust_augment(x, self.background)
            return batch
        batch["pixel_values"] = robust_augment(torch.cat([x, x]), self.background, **PAIR_AUGMENT)
        batch["labels"] = torch.cat([batch["labels"], batch["labels"]])
        batch["pairs"] = partner_rows(len(x))
        return batch


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


class DecodedImages(torch.utils.data.Dataset):
    """A split decoded once into one uint8 tensor; augmented and normalised per item.

    Decoding a PNG and converting it at every step would repeat the same work each epoch; decoded once, every
    epoch after the first skips it."""

    def __init__(self, split, size: int, mean, std, augment: str, profile: ImageProfile | None = None,
                 chunk: int = 2048):
        self.augment = augment
        self.shift, self.erase = _augment_params(size, augment)
        self.pixels = torch.empty((len(split), 3, size, size), dtype=torch.uint8)
        for start in range(0, len(split), chunk):
            images = split[start : start + chunk]["image"]
            # mean 0, std 1/255: the 0-255 values, prepared, resized and converted as at search time.
            self.pixels[start : start + len(images)] = model_input(images, profile, size, [0, 0, 0],
                                                                   [1 / 255] * 3)[0].round_()
        self.labels = torch.tensor(split["label"])
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1) * 255
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1) * 255

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        x = (self.pixels[i].float() - self.mean) / self.std
        if self.augment not in ("none", "robust"):  # robust: per batch, in RobustCollator
            x = _augment(x, self.shift, self.erase)
        return {"pixel_values": x, "labels": self.labels[i]}


def decoded_or_lazy(split, size: int, mean, std, augment: str, profile: ImageProfile | None = None,
                    max_bytes: int = 2 << 30):
    """Decode the split into memory when it fits in `max_bytes` (Fashion-MNIST: 141 MB), else transform lazily."""
    if len(split) * 3 * size * size <= max_bytes:
        return DecodedImages(split, size, mean, std, augment, profile)
    return split.with_transform(make_transform(size, mean, std, augment, profile))


def predict_views(model: ConvNextForImageHashing, dataset, views: str, batch_size: int = 256) -> torch.Tensor:
    """Class probabilities of every view of the test images, [n_views, n, classes] (training.model.view_outputs,
    what the embedder averages)."""
    model.eval()
    device = next(model.parameters()).device
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=default_data_collator)
    return torch.cat([view_outputs(model, b["pixel_values"].to(device), views)[2].cpu() for b in loader], dim=1)


MIN_STEPS = 1500  # optimizer steps a default run makes at least, whatever the set's size
FEW_PER_CLASS = 50  # below this many training images a class, training from scratch is warned against


def auto_schedule(n_train: int, batch_size: int | None = None, epochs: float | None = None) -> tuple[int, float]:
    """(batch size, epochs) for a training set of `n_train` images, where not given: a batch of about a fiftieth
    of the set (a power of two, 16 to 128), and epochs enough for MIN_STEPS optimizer steps (12 to 200). Fashion-
    MNIST's 60,000 get 128 and 12; 162 pictures get 16 and 137 epochs, not 60 steps in all."""
    if batch_size is None:
        batch_size = int(min(128, max(16, 2 ** round(math.log2(max(n_train, 1) / 50)))))
    if epochs is None:
        epochs = float(min(200, max(12, math.ceil(MIN_STEPS / math.ceil(max(n_train, 1) / batch_size)))))
    return batch_size, epochs


def small_set_warning(n_train: int, n_classes: int) -> str | None:
    per_class = n_train / max(n_classes, 1)
    if per_class >= FEW_PER_CLASS:
        return None
    return (f"{n_train} training images ({per_class:.0f} a class) are few to train a model from scratch well; "
            "better: fine-tune a pretrained checkpoint, --model facebook/convnext-tiny-224 (needs the Hugging Face "
            "Hub; a GPU advised), or fine-tune the demo model, --model models/fmnist-small")


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


def trainer_overrides(flags: list[str] | None) -> dict:
    """transformers' TrainingArguments given on the command line (`--lr_scheduler_type linear`, as its example
    scripts take them): each one named, with its parsed value, to be set over this project's defaults."""
    if not flags:
        return {}
    from transformers import HfArgumentParser

    try:
        (parsed,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses(
            args=["--output_dir", "checkpoints", *flags])
    except (ValueError, SystemExit) as e:
        raise ValueError(f"{' '.join(flags)}: not flags of this command (python -m training --help) nor of "
                         f"transformers' TrainingArguments ({e})") from None
    known = {f.name for f in fields(TrainingArguments)}
    named = {f.split("=")[0].lstrip("-").replace("-", "_") for f in flags if f.startswith("--")}
    named = {n if n in known else n.removeprefix("no_") for n in named}
    return {n: getattr(parsed, n) for n in sorted(named & known)}


def train(args: TrainArgs, trainer_flags: list[str] | None = None) -> dict:
    """Train and write the model dir. `trainer_flags`: TrainingArguments flags set over the defaults here."""
    overrides = trainer_overrides(trainer_flags)  # refuse a wrong flag before loading anything
    precision = training_precision(args.precision)  # refuse a wrong name before loading anything
    set_seed(args.seed)
    out = Path(args.output)
    ds = load_image_dataset(args.dataset, seed=args.seed)
    if args.max_train_samples:
        ds["train"] = ds["train"].shuffle(seed=args.seed).select(range(min(args.max_train_samples, len(ds["train"]))))
    if args.max_test_samples:
        ds["test"] = ds["test"].select(range(min(args.max_test_samples, len(ds["test"]))))
    names = label_names(ds)
    if names == [UNLABELLED]:
        raise ValueError(f"{args.dataset} has no class sub-folders, so there is nothing to learn: index it with an "
                         "existing model instead (python -m indexer build --model models/fmnist-small --dataset …), "
                         "or sort its pictures into one sub-folder per class")
    args.batch_size, args.epochs = auto_schedule(len(ds["train"]), args.batch_size, args.epochs)
    warning = small_set_warning(len(ds["train"]), len(names))
    if warning:
        log.warning("%s", warning)
    log.info("training on %d images, %d classes: batch %d, %g epochs", len(ds["train"]), len(names),
             args.batch_size, args.epochs)
    overrides_config = parse_overrides(args.config_overrides)
    if args.instance_weight > 0:
        if args.augment != "robust":
            raise ValueError("--instance-weight trains on two augmented views of every image: "
                             "it needs --augment robust (the default)")
        overrides_config = {"instance_dim": INSTANCE_DIM, **overrides_config,
                            "instance_weight": args.instance_weight}
    model, processor = build_model(
        args.model, n_bits=args.bits, id2label=dict(enumerate(names)), image_size=args.image_size,
        overrides=overrides_config,
    )
    size, mean, std = processor_size(processor), processor.image_mean, processor.image_std
    # Training sees images prepared as the collection's and the queries will be: with the training set's profile.
    profile = profile_of(ds["train"]) if args.prepare else None
    model.config.image_profile = profile.as_dict() if profile else None
    train_split, val_ds = ds["train"], None
    if args.validation > 0:
        held = ds["train"].train_test_split(test_size=args.validation, seed=args.seed, stratify_by_column="label")
        train_split = held["train"]
        val_ds = decoded_or_lazy(held["test"], size, mean, std, "none", profile)
    train_ds = decoded_or_lazy(train_split, size, mean, std, args.augment, profile)
    test_ds = decoded_or_lazy(ds["test"], size, mean, std, "none", profile)

    ckpt_dir = out / "checkpoints"
    targs = _training_arguments(args, ckpt_dir, precision, overrides)
    collator = None
    if args.augment == "robust":
        background = torch.tensor(profile.background if profile else [0.0] * 3) / 255
        collator = RobustCollator((background - torch.tensor(mean)) / torch.tensor(std), model,
                                  pairs=args.instance_weight > 0)
    trainer = Trainer(model=model, args=targs, train_dataset=train_ds, eval_dataset=val_ds, data_collator=collator,
                      compute_metrics=accuracy_of if val_ds is not None else None)
    last = get_last_checkpoint(str(ckpt_dir)) if args.resume and ckpt_dir.is_dir() else None
    if last:
        log.info("resuming from %s", last)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=last)
    train_seconds = time.perf_counter() - start
    validation = [{"epoch": round(e["epoch"], 2), "accuracy": round(e["eval_accuracy"], 4)}
                  for e in trainer.state.log_history if "eval_accuracy" in e]

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
        "chance": round(max(labels.bincount().tolist()) / len(labels), 4),  # always guessing the commonest label
        "test_accuracy_single_view": single_view,
        "embed_views": model.config.embed_views,
        "image_profile": model.config.image_profile,
        "train_samples": len(ds["train"]),
        "test_samples": len(ds["test"]),
        "skipped_files": getattr(ds, "skipped", []),
        "validation": validation,  # accuracy on the held-out share after each epoch; the best one is the model
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "warning": warning,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "train_seconds": round(train_seconds, 1),
        "resumed_from": last,
        "precision": precision,
        "parameters": sum(p.numel() for p in model.parameters()),
        "instance_dim": getattr(model.config, "instance_dim", 0),  # > 0: the float vector has an instance part
        "args": asdict(args),
        "trainer_overrides": {k: str(getattr(v, "value", v)) for k, v in overrides.items()},  # enums by value
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_model_card(out, metrics, names)
    return metrics


def training_precision(precision: str) -> str:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return resolve_precision(precision, device, "--precision", "bfloat16 is autocast; auto picks it where native")


def _training_arguments(args: TrainArgs, ckpt_dir: Path, precision: str, overrides: dict) -> TrainingArguments:
    return TrainingArguments(**{**dict(
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
        save_total_limit=1,  # with load_best_model_at_end, the best is kept besides the last
        eval_strategy="epoch" if args.validation > 0 else "no",
        load_best_model_at_end=args.validation > 0,
        metric_for_best_model="accuracy" if args.validation > 0 else None,
        greater_is_better=True if args.validation > 0 else None,
        logging_steps=50,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        report_to="none",
        seed=args.seed,
    ), **overrides})


def write_model_card(out: Path, metrics: dict, names: list[str]) -> None:
    float_vector = ("the normalised tanh code beside an instance head's output (trained on two views of every "
                    "image)" if metrics.get("instance_dim") else "the pooled features")
    card = f"""---
library_name: transformers
pipeline_tag: image-feature-extraction
tags: [convnext, image-retrieval, deep-hashing]
---
# {out.name}

ConvNeXt ({metrics['model']}) with a {metrics['bits']}-bit hash layer, trained on `{metrics['dataset']}`
for image search: {float_vector} is the float vector (cosine), the signs of the hash layer the binary
code (Hamming distance).

| metric | value |
|---|---|
| test accuracy | {metrics['test_accuracy']:.4f} (chance: {metrics['chance']:.4f}) |
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
