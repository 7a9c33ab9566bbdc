"""The generic backbone: a ConvNeXt pretrained here, self-supervised, on pictures nobody here made
(training/corpora.py), the default starting point of the models the product trains.

Objective: instance discrimination (SimCLR, Chen et al. 2020; NT-Xent, training.model.instance_loss): two views of
every picture, each view's nearest among the batch's views must be the other view of the same picture. The views
change what a second drawing or photo of the same thing changes (`views`): crop and scale, a small rotation, a
flip, the background behind a transparent picture, colour and tint, greyscale, inverted, line weight, outlines only
(a line drawing of the picture), blur.

`python -m training pretrain` runs it with transformers' Trainer (a checkpoint every `save_steps`; a stopped run
resumes from its last one) and writes a normal `save_pretrained` ConvNeXt dir (float16 weights), its image
processor and a model card: `--model <that dir>` fine-tunes from it (training.model.build_model). `--init <a backbone
dir>` starts a second stage from its weights, with a new projection head and schedule (`make backbone` runs two).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import ConvNextConfig, ConvNextModel, ConvNextPreTrainedModel, Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from training.augment import mix_channels, outlines, to_grey
from training.model import HashOutput, instance_loss, make_processor, partner_rows

log = logging.getLogger(__name__)

BACKBONE = dict(patch_size=4, num_stages=4, hidden_sizes=[32, 64, 128, 256], depths=[2, 2, 3, 2],
                layer_scale_init_value=1.0, drop_path_rate=0.0)
MEAN, STD = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]


@dataclass
class PretrainArgs:
    output: str = field(default="models/backbone", metadata={"help": "the backbone's model dir"})
    sources: str = field(default="openclipart,icons,digits,fashion_mnist",
                         metadata={"help": "comma-separated corpora (training/corpora.py) or folders of pictures"})
    per_source: int = field(default=10000, metadata={"help": "pictures a source gives at most (spread evenly)"})
    image_size: int = 64
    epochs: float = 40
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    temperature: float = 0.2
    outline_share: float = field(default=0.2, metadata={"help": "share of the views drawn as outlines only (a line "
                                                                "drawing of the picture); the first backbone had 0"})
    save_steps: int = 200
    seed: int = 0
    resume: bool = field(default=True, metadata={"help": "continue from the last checkpoint in <output>/checkpoints"})
    init: str = field(default="", metadata={"help": "a backbone dir (this command's output) whose weights a new run "
                                                    "starts from, for a second stage; a resumed run ignores it"})


class ConvNextForInstanceDiscrimination(ConvNextPreTrainedModel):
    """ConvNeXt + a projection MLP (trained, then dropped: the backbone's pooled features are what is kept)."""

    def __init__(self, config: ConvNextConfig):
        super().__init__(config)
        self.convnext = ConvNextModel(config)
        width = config.hidden_sizes[-1]
        self.projector = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, 128))
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, pairs: torch.Tensor | None = None, **kwargs) -> HashOutput:
        pooled = self.convnext(pixel_values).pooler_output
        z = self.projector(pooled)
        loss = None
        if pairs is not None:
            loss = instance_loss(z, pairs, getattr(self.config, "pretrain_temperature", 0.2))
        return HashOutput(loss=loss, pooled=pooled, instance=z)


def _background(n: int, size: int) -> torch.Tensor:
    """[n, 3, size, size] in 0-1: a plain colour, a gradient between two, or smooth noise round one."""
    a, b = torch.rand(n, 3, 1, 1), torch.rand(n, 3, 1, 1)
    t = torch.linspace(0, 1, size).view(1, 1, 1, size).expand(n, 1, size, size)
    t = torch.where(torch.rand(n, 1, 1, 1) < 0.5, t, t.transpose(-1, -2))
    noise = F.interpolate(torch.rand(n, 1, 6, 6), size=size, mode="bicubic", align_corners=False)
    kind = torch.randint(0, 3, (n, 1, 1, 1))
    return torch.where(kind == 0, a.expand(n, 3, size, size),
                       torch.where(kind == 1, a + (b - a) * t, (a + 0.3 * (noise - 0.5)))).clamp(0, 1)


def views(rgba: torch.Tensor, outline_share: float = 0.2) -> torch.Tensor:
    """One random view of each picture of a batch [n, 4, s, s] (uint8 RGBA), as [n, 3, s, s] normalised;
    `outline_share` of them drawn as outlines only."""
    n, _, s, _ = rgba.shape
    x = rgba.float() / 255
    # crop and scale (a share 0.35-1 of the area), a small rotation, a flip: one affine sampling
    scale = torch.empty(n).uniform_(0.35, 1).sqrt()
    angle = torch.empty(n).uniform_(-15, 15).deg2rad()
    flip = torch.where(torch.rand(n) < 0.5, -1.0, 1.0)
    shift = (1 - scale).unsqueeze(1) * torch.empty(n, 2).uniform_(-1, 1)
    theta = torch.stack([torch.stack([scale * angle.cos() * flip, -scale * angle.sin(), shift[:, 0]], -1),
                         torch.stack([scale * angle.sin() * flip, scale * angle.cos(), shift[:, 1]], -1)], 1)
    x = F.grid_sample(x, F.affine_grid(theta, [n, 4, s, s], align_corners=False), align_corners=False)
    # line weight: strokes thickened or thinned (a max or min over 3×3 of the alpha)
    alpha = x[:, 3:]
    weight = torch.rand(n, 1, 1, 1)
    alpha = torch.where(weight < 0.15, F.max_pool2d(alpha, 3, 1, 1),
                        torch.where(weight > 0.85, -F.max_pool2d(-alpha, 3, 1, 1), alpha))
    x = x[:, :3] * alpha + _background(n, s) * (1 - alpha)
    # another drawing style: the picture as its outlines only, lines of one colour on a plain one
    outline = torch.rand(n, 1, 1, 1) < outline_share
    if outline.any():
        x = torch.where(outline, outlines(x, torch.rand(n, 3, 1, 1) * 0.4, 0.7 + torch.rand(n, 3, 1, 1) * 0.3), x)
    # colour: channels mixed (tint and hue), brightness and contrast; greyscale; inverted
    x = mix_channels(x, 0.8)
    x = (x - 0.5) * torch.empty(n, 1, 1, 1).uniform_(0.6, 1.4) + 0.5 + torch.empty(n, 1, 1, 1).uniform_(-0.2, 0.2)
    x = to_grey(x, 0.2)
    x = torch.where(torch.rand(n, 1, 1, 1) < 0.1, 1 - x, x)
    blur = torch.rand(n) < 0.3
    if blur.any():
        small = F.interpolate(x[blur], scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False)
        x[blur] = F.interpolate(small, size=s, mode="bilinear", align_corners=False)
    x = x.clamp(0, 1)
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


class PictureSet(torch.utils.data.Dataset):
    def __init__(self, pictures: np.ndarray):
        self.pictures = torch.from_numpy(pictures).permute(0, 3, 1, 2).contiguous()  # [n, 4, s, s] uint8

    def __len__(self) -> int:
        return len(self.pictures)

    def __getitem__(self, i: int) -> dict:
        return {"rgba": self.pictures[i]}


def collate_pairs(features: list[dict], outline_share: float = 0.2) -> dict:
    """Two views of every picture, the batch's rows [views 1; views 2], `pairs` giving each row its partner."""
    rgba = torch.stack([f["rgba"] for f in features])
    pixels = torch.cat([views(rgba, outline_share), views(rgba, outline_share)])
    return {"pixel_values": pixels, "pairs": partner_rows(len(rgba))}


def _pictures(args: PretrainArgs, cache: Path) -> np.ndarray:
    """The corpora's pictures, loaded once and kept beside the checkpoints (a resumed run reads them back)."""
    from training.corpora import load_corpora

    path = cache / f"pictures-{args.image_size}-{args.per_source}-{args.sources.replace('/', '_')[:80]}.npy"
    if path.is_file():
        return np.load(path)
    pictures = load_corpora(args.image_size, [s.strip() for s in args.sources.split(",") if s.strip()],
                            args.per_source)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, pictures)
    return pictures


def pretrain(args: PretrainArgs, trainer_overrides: dict | None = None) -> dict:
    """Pretrain and write the backbone's model dir (resuming a stopped run); returns its metrics."""
    torch.manual_seed(args.seed)
    out = Path(args.output)
    ckpt = out / "checkpoints"
    pictures = _pictures(args, ckpt)
    config = ConvNextConfig(num_channels=3, image_size=args.image_size, **BACKBONE)
    config.pretrain_temperature = args.temperature
    model = ConvNextForInstanceDiscrimination(config)
    last = get_last_checkpoint(str(ckpt)) if args.resume and ckpt.is_dir() else None
    if args.init and not last:  # a second stage: the backbone's weights, a new projector, optimiser and schedule
        model.convnext.load_state_dict(ConvNextModel.from_pretrained(args.init).float().state_dict())
        log.info("starting from %s", args.init)
    targs = TrainingArguments(**{**dict(
        output_dir=str(ckpt), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate, weight_decay=args.weight_decay, warmup_steps=0.03,
        lr_scheduler_type="cosine", save_strategy="steps", save_steps=args.save_steps, save_total_limit=1,
        logging_steps=50, remove_unused_columns=False, dataloader_num_workers=0, dataloader_pin_memory=False,
        report_to="none", seed=args.seed, label_names=[]), **(trainer_overrides or {})})
    processor = make_processor(args.image_size, MEAN, STD)  # saved with every checkpoint too
    collate = partial(collate_pairs, outline_share=args.outline_share)
    trainer = Trainer(model=model, args=targs, train_dataset=PictureSet(pictures), data_collator=collate,
                      processing_class=processor)
    if last:
        log.info("resuming from %s", last)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=last)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    backbone = model.convnext.to(torch.float16)
    backbone.config.architectures = [ConvNextModel.__name__]
    backbone.save_pretrained(out)
    processor.save_pretrained(out)
    metrics = {"pictures": len(pictures), "sources": args.sources, "epochs": args.epochs,
               "steps": trainer.state.global_step, "seconds_this_run": round(time.perf_counter() - start, 1),
               "resumed_from": last, "first_loss": losses[0] if losses else None,
               "last_loss": losses[-1] if losses else None,
               "parameters": sum(p.numel() for p in backbone.parameters()), "args": asdict(args)}
    first = Path(args.init) / "metrics.json" if args.init else None
    if first is not None and first.is_file():  # a later stage records the run it started from
        metrics["first_stage"] = json.loads(first.read_text())
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _card(out, metrics)
    return metrics


def _card(out: Path, m: dict) -> None:
    (out / "README.md").write_text(f"""---
library_name: transformers
pipeline_tag: image-feature-extraction
tags: [convnext, self-supervised, image-retrieval]
---
# {out.name}

A ConvNeXt backbone ({m['parameters']:,} parameters, {m['args']['image_size']} px inputs) pretrained self-supervised
(instance discrimination, NT-Xent at temperature {m['args']['temperature']}) on {m['pictures']:,} pictures:
{m['sources']} (at most {m['args']['per_source']:,} a source; a tenth of openclipart held out). Views: crop and scale,
rotation up to ±15°, flips, a new background behind transparent pictures, colour mixing, brightness and contrast,
greyscale, inversion, line weight, blur, and for {m['args'].get('outline_share', 0):.0%} of them outlines only.
{_steps(m)}

Reproduce: {_reproduce(out, m)} (resumes when stopped). Fine-tune:
`python -m training --dataset FOLDER --model {out}`. Load: `transformers.AutoModel.from_pretrained("{out}")`.
""")


def _stages(m: dict) -> list[dict]:
    """A backbone's runs, its first first: a later stage records the run it started from (`first_stage`)."""
    return [*(_stages(m["first_stage"]) if m.get("first_stage") else []), m]


def _steps(m: dict) -> str:
    """How long it trained: its steps and loss, after those of the stages before it, each with its learning rate."""
    def nth(i: int) -> str:
        return ("first", "second", "third", "fourth", "fifth")[i] if i < 5 else f"{i + 1}th"

    def run(r: dict) -> str:
        loss = f" (loss {r['first_loss']:.2f} → {r['last_loss']:.2f})" if r.get("first_loss") is not None else ""
        return f"{r['steps']:,} steps of {r['args']['batch_size']} pictures{loss}"

    stages = _stages(m)
    if len(stages) == 1:
        return run(m) + "."
    text = f"{run(stages[0])} at learning rate {stages[0]['args']['learning_rate']:g}"
    for i, r in enumerate(stages[1:], 1):
        text += (f", then a {nth(i)} stage of {run(r)} at {r['args']['learning_rate']:g}, from the {nth(i - 1)} "
                 "one's weights")
    return text + "."


def _reproduce(out: Path, m: dict) -> str:
    """The commands that made the backbone, stage by stage: each earlier stage's output is the dir the next one
    started from (--init), the last one's is `out`."""
    stages = _stages(m)
    outputs = [r["args"]["init"] for r in stages[1:]] + [str(out)]
    commands = []
    for r, output in zip(stages, outputs, strict=True):
        a = r["args"]
        more = f" --init {a['init']} --epochs {a['epochs']:g} --learning_rate {a['learning_rate']:g}"
        commands.append(f"`python -m training pretrain --output {output}{more if a.get('init') else ''}`")
    return ", then ".join(commands)
