"""How long and how a run trains: the schedule chosen from the set's size, the precision, and transformers'
TrainingArguments with this project's defaults (any of them can be set from the command line)."""

from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments

from training.args import TrainArgs
from training.model import resolve_precision

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
            "better: start from the pretrained backbone (the default where models/backbone is), or fine-tune a "
            "published checkpoint, --model facebook/convnext-tiny-224 (needs the Hugging Face Hub; a GPU advised)")


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


def training_precision(precision: str) -> str:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return resolve_precision(precision, device, "--precision", "bfloat16 is autocast; auto picks it where native")


def training_arguments(args: TrainArgs, ckpt_dir: Path, precision: str, overrides: dict) -> TrainingArguments:
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


class BodyRateTrainer(Trainer):
    """transformers' Trainer, its optimizer training the ConvNeXt body (`convnext.*`) at `body_lr_scale` times the
    learning rate of the heads (those a fine-tuning run adds or re-learns), so a pretrained body changes less."""

    def __init__(self, *args, body_lr_scale: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.body_lr_scale = body_lr_scale

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.optimizer is None and self.body_lr_scale != 1.0:
            model = self.model if model is None else model
            decay = set(self.get_decay_parameter_names(model))
            cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
            groups: dict[tuple[bool, bool], list] = {}
            body = model.base_model_prefix + "."  # convnext.
            for name, p in model.named_parameters():
                if p.requires_grad:
                    groups.setdefault((name.startswith(body), name in decay), []).append(p)
            lr = kwargs.pop("lr", self.args.learning_rate)
            self.optimizer = cls([{"params": ps, "weight_decay": self.args.weight_decay if decays else 0.0,
                                   "lr": lr * self.body_lr_scale if in_body else lr}
                                  for (in_body, decays), ps in groups.items()], lr=lr, **kwargs)
        return super().create_optimizer(model)
