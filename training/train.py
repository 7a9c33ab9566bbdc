"""Fine-tune (or train from scratch) a ConvNeXt hashing model on a labelled image dataset.

The recipe, in the shape of transformers' run_image_classification.py: arguments (training/args.py), the data
prepared as at search time (training/inputs.py), augmented per batch (training/augment.py), `Trainer` for the loop
with this project's schedule (training/schedule.py), `save_pretrained` and a model card (training/card.py) at the end.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import Trainer, set_seed
from transformers.trainer_utils import get_last_checkpoint

from training.args import TrainArgs, resolve
from training.augment import RobustCollator
from training.card import write_model_card
from training.codes import CLASS_CODE_WEIGHT, INSTANCE_CODE_BITS
from training.data import UNLABELLED, label_names, load_image_dataset
from training.inputs import accuracy_of, decoded_or_lazy, predict_views
from training.model import INSTANCE_DIM, PRESETS, build_model, processor_size
from training.prepare import DARK_ON_LIGHT, profile_of
from training.schedule import (
    BodyRateTrainer,
    auto_schedule,
    parse_overrides,
    small_set_warning,
    trainer_overrides,
    training_arguments,
    training_precision,
)

log = logging.getLogger(__name__)

__all__ = ["TrainArgs", "train"]


def _dataset(args: TrainArgs):
    """The dataset, cut to --max-train-samples / --max-test-samples, and its class names (refused if it has none)."""
    ds = load_image_dataset(args.dataset, seed=args.seed)
    if args.max_train_samples:
        ds["train"] = ds["train"].shuffle(seed=args.seed).select(range(min(args.max_train_samples, len(ds["train"]))))
    if args.max_test_samples:
        ds["test"] = ds["test"].select(range(min(args.max_test_samples, len(ds["test"]))))
    names = label_names(ds)
    if names == [UNLABELLED]:
        raise ValueError(f"{args.dataset} has no class sub-folders, so there is nothing to learn: search it with "
                         "the pretrained backbone alone (python -m app.collection FOLDER), or sort its pictures into "
                         "one sub-folder per class")
    return ds, names


def _model(args: TrainArgs, names: list[str]):
    """The model to train (a preset from scratch, or a checkpoint), with an instance head if asked for."""
    overrides = parse_overrides(args.config_overrides)
    if args.instance_weight > 0:
        if args.augment != "robust":
            raise ValueError("--instance-weight trains on two augmented views of every image: "
                             "it needs --augment robust (the default)")
        # instance_bits: the binary code also says which image (training.codes)
        overrides = {"instance_dim": INSTANCE_DIM, "instance_bits": True, "instance_code_bits": INSTANCE_CODE_BITS,
                     "instance_code_seed": 0, "class_code_weight": CLASS_CODE_WEIGHT, **overrides,
                     "instance_weight": args.instance_weight}
    return build_model(args.model, n_bits=args.bits, id2label=dict(enumerate(names)), image_size=args.image_size,
                       overrides=overrides)


def _trainer(args: TrainArgs, ds, model, processor, targs) -> tuple[Trainer, object]:
    """The Trainer over the splits, prepared as the collection's images and the queries will be (the training set's
    profile, recorded in the model's config); and the test split, ready to evaluate."""
    size, mean, std = processor_size(processor), processor.image_mean, processor.image_std
    profile = profile_of(ds["train"]) if args.prepare else None
    model.config.image_profile = profile.as_dict() if profile else None
    train_split, val_ds = ds["train"], None
    if args.validation > 0:
        held = ds["train"].train_test_split(test_size=args.validation, seed=args.seed, stratify_by_column="label")
        train_split = held["train"]
        val_ds = decoded_or_lazy(held["test"], size, mean, std, "none", profile)
    surfaces = args.surfaces and args.augment == "robust" and profile is not None
    train_ds = decoded_or_lazy(train_split, size, mean, std, args.augment, profile, surfaces=surfaces, seed=args.seed,
                               cache=Path(targs.output_dir))  # kept beside the checkpoints: a resumed run reuses them
    collator = None
    if args.augment == "robust":
        background = torch.tensor(profile.background if profile else [0.0] * 3) / 255
        ink = torch.full((3,), 0.0 if profile and profile.polarity == DARK_ON_LIGHT else 1.0)  # the objects' extreme
        normalised = [(v - torch.tensor(mean)) / torch.tensor(std) for v in (background, ink)]
        collator = RobustCollator(normalised[0], model, pairs=args.instance_weight > 0, colour=bool(args.colour_views),
                                  outline=args.outline_views or 0.0, ink=normalised[1])
    trainer = BodyRateTrainer(model=model, args=targs, train_dataset=train_ds, eval_dataset=val_ds,
                              data_collator=collator, compute_metrics=accuracy_of if val_ds is not None else None,
                              body_lr_scale=args.body_lr_scale)
    return trainer, decoded_or_lazy(ds["test"], size, mean, std, "none", profile)


def _run_to_continue(ckpt_dir: Path, args: TrainArgs) -> str | None:
    """The last checkpoint of a stopped run, to resume; None when asked not to, or when that run already trained as
    many epochs as this one asks (training the same model again starts over, its old checkpoints removed)."""
    last = get_last_checkpoint(str(ckpt_dir)) if args.resume and ckpt_dir.is_dir() else None
    if last is None:
        return None
    if json.loads((Path(last) / "trainer_state.json").read_text()).get("epoch", 0) >= args.epochs:
        log.info("%s already trained %g epochs: training again from the start", last, args.epochs)
        shutil.rmtree(ckpt_dir)
        return None
    log.info("resuming from %s", last)
    return last


def embed_views_for(augment: str, instance: bool) -> str:
    """How a model trained with `augment` embeds an image (training.views.VIEWS): one that saw no flips, as it is;
    one trained with flips, as the mean over the image and its mirror; one trained robust (blur and resampling among
    its changes) with an instance head, its instance part also over both smoothed (training.views.smooth)."""
    if augment == "none":
        return "image"
    return "image+mirror+smooth" if augment == "robust" and instance else "image+mirror"


def stages_before(start: str) -> list[dict]:
    """How a starting point that is a model dir of this project was trained, stage by stage (from its metrics.json):
    a model fine-tuned from it records them before its own, so its card tells the whole recipe."""
    path = Path(start) / "metrics.json"
    made = json.loads(path.read_text()) if path.is_file() else {}
    if "train_seconds" not in made:
        return []  # a preset (from scratch), the backbone, a searcher or a Hub checkpoint: the model field names it
    return made.get("stages") or [_stage(made)]


def _stage(metrics: dict) -> dict:
    """One training run, as `stages` records it: where it started, how long and how fast it learned."""
    return {"model": metrics.get("model"), "epochs": metrics.get("epochs"),
            "learning_rate": metrics.get("args", {}).get("learning_rate"),
            "train_seconds": metrics.get("train_seconds")}


def train(args: TrainArgs, trainer_flags: list[str] | None = None) -> dict:
    """Train and write the model dir. `trainer_flags`: TrainingArguments flags set over the defaults here."""
    overrides = trainer_overrides(trainer_flags)  # refuse a wrong flag before loading anything
    precision = training_precision(args.precision)  # refuse a wrong name before loading anything
    set_seed(args.seed)
    args = resolve(args)  # the starting point, and the instance head for a folder
    out = Path(args.output)
    ds, names = _dataset(args)
    args.batch_size, args.epochs = auto_schedule(len(ds["train"]), args.batch_size, args.epochs)
    warning = small_set_warning(len(ds["train"]), len(names)) if args.model in PRESETS else None
    if warning:
        log.warning("%s", warning)
    log.info("training on %d images, %d classes: batch %d, %g epochs", len(ds["train"]), len(names),
             args.batch_size, args.epochs)
    model, processor = _model(args, names)
    ckpt_dir = out / "checkpoints"
    last = _run_to_continue(ckpt_dir, args)  # first: a finished run's checkpoints go before anything is kept there
    trainer, test_ds = _trainer(args, ds, model, processor, training_arguments(args, ckpt_dir, precision, overrides))
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=last)
    train_seconds = time.perf_counter() - start

    # Accuracy as the product will see it: over the views the embedder will average (recorded in the config).
    model.config.embed_views = embed_views_for(args.augment, bool(getattr(model.config, "instance_dim", 0)))
    labels = torch.tensor(ds["test"]["label"])
    probs = predict_views(model, test_ds, model.config.embed_views)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    metrics = {
        "dataset": args.dataset, "model": args.model, "bits": args.bits,
        "test_accuracy": float((probs.mean(0).argmax(-1) == labels).float().mean()),
        "chance": round(max(labels.bincount().tolist()) / len(labels), 4),  # always guessing the commonest label
        "test_accuracy_single_view": float((probs[0].argmax(-1) == labels).float().mean()),
        "embed_views": model.config.embed_views, "image_profile": model.config.image_profile,
        "train_samples": len(ds["train"]), "test_samples": len(ds["test"]),
        "skipped_files": getattr(ds, "skipped", []),
        # accuracy on the held-out share after each epoch; the best one is the model
        "validation": [{"epoch": round(e["epoch"], 2), "accuracy": round(e["eval_accuracy"], 4)}
                       for e in trainer.state.log_history if "eval_accuracy" in e],
        "best_checkpoint": trainer.state.best_model_checkpoint, "warning": warning,
        "batch_size": args.batch_size, "epochs": args.epochs, "train_seconds": round(train_seconds, 1),
        "resumed_from": last, "precision": precision, "parameters": sum(p.numel() for p in model.parameters()),
        "instance_dim": getattr(model.config, "instance_dim", 0),  # > 0: the float vector has an instance part
        "instance_code_bits": getattr(model.config, "instance_code_bits", 0),  # training.codes
        "class_code_weight": getattr(model.config, "class_code_weight", 1),
        "args": asdict(args),
        "trainer_overrides": {k: str(getattr(v, "value", v)) for k, v in overrides.items()},  # enums by value
    }
    metrics["stages"] = stages_before(args.model) + [_stage(metrics)]
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_model_card(out, metrics, names)
    return metrics
