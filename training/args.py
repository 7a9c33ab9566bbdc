"""The training command's arguments (`python -m training --help`), as transformers' example scripts declare them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from training import config
from training.augment import OUTLINE_SHARE
from training.model import INSTANCE_WEIGHT, PRESETS


@dataclass
class TrainArgs:
    dataset: str = field(default_factory=lambda: config.default("dataset"),
                         metadata={"help": "Hub id, image folder, or fashion_mnist ($DATASET)"})
    model: str | None = field(
        default=None,
        metadata={"help": f"a preset to train from scratch ({', '.join(PRESETS)}) or a checkpoint to fine-tune: a "
                  "model dir, or a Hub id such as facebook/convnext-tiny-224 (online); default: the pretrained "
                  "backbone ($BACKBONE, committed) where it is, else fmnist-small"},
    )
    output: str = field(default_factory=lambda: config.default("model"),
                        metadata={"help": "model dir to write ($MODEL_DIR, which the app and the indexer read)"})
    epochs: float | None = field(
        default=None, metadata={"help": "default: chosen from the training set's size (auto_schedule)"})
    bits: int = field(default=64, metadata={
        "help": "bits of the hash layer's code (which class); with an instance head the binary code writes them "
                "class_code_weight times and adds instance_code_bits that say which image (training.codes)"})
    batch_size: int | None = field(
        default=None, metadata={"help": "default: chosen from the training set's size (auto_schedule)"})
    learning_rate: float = 2e-3
    body_lr_scale: float = field(
        default=1.0, metadata={"help": "the ConvNeXt body's learning rate as a share of --learning_rate (the heads')"})
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
        metadata={"help": "prepare every image like the collection's (training.prepare.prepare) with the training "
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
    surfaces: bool = field(
        default=False,
        metadata={"help": "with --augment robust and --prepare: also train on a view of every image's object lying on "
                  "a generated surface (texture, light stronger on one side, a shadow; training.surfaces), prepared "
                  "as a photo is, for half the images at each step: added to the batch as a third view of its image "
                  "(with --instance-weight: it learns the class and is drawn to its image's first view), else in the "
                  "image's place (README: \"Your photos\" has the figures)"},
    )
    instance_weight: float | None = field(
        default=None,
        metadata={"help": f"default: {INSTANCE_WEIGHT} for a folder (with --augment robust), 0 otherwise; > 0: add an "
                  "instance head (training.model) and train on two augmented views of every image "
                  "(rotation, scale, shift, an edge cut and re-framed, contrast, blur, noise), each view's nearest "
                  "among the batch's views to be its partner, with this weight in the loss: the float vector then "
                  "finds a changed picture's very image more often (README: \"Your photos\"); a step costs twice "
                  "the compute"},
    )
    colour_views: bool | None = field(
        default=None,
        metadata={"help": "with --augment robust: also train on recoloured and greyscale views (channels mixed, as "
                  "pretraining's views; training.augment.recolour), so that a tinted or greyscale copy finds its "
                  "original; default: on for a folder, off otherwise (the demo's garments are grey)"},
    )
    outline_views: float | None = field(
        default=None,
        metadata={"help": "with --augment robust: the share of views drawn as the picture's outlines only (lines in "
                  "the collection's ink on its background; training.augment.outlines, as pretraining's views), so "
                  "that a line drawing of a thing finds its filled picture; default: "
                  f"{OUTLINE_SHARE} for a folder, 0 otherwise"},
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


def starting_point(model: str | None) -> str:
    """What a model trained without --model starts from: the pretrained backbone ($BACKBONE; a relative path not
    found from the working directory is the project's own, beside this package) where it is, else the fmnist-small
    preset, from scratch."""
    if model:
        return model
    backbone = Path(config.default("backbone"))
    if not backbone.is_absolute() and not backbone.is_dir():  # run from elsewhere: the project's own
        backbone = Path(__file__).resolve().parent.parent / backbone
    return str(backbone) if (backbone / "model.safetensors").is_file() else "fmnist-small"


def resolve(args: TrainArgs) -> TrainArgs:
    """The defaults that depend on the data: the starting point, and for a folder an instance head (its pictures are
    searched for one another, not only by class) and recoloured views (a folder's pictures have colours)."""
    args.model = starting_point(args.model)
    folder = Path(args.dataset).is_dir() and args.augment == "robust"
    if args.instance_weight is None:
        args.instance_weight = INSTANCE_WEIGHT if folder else 0.0
    if args.colour_views is None:
        args.colour_views = folder
    if args.outline_views is None:
        args.outline_views = OUTLINE_SHARE if folder else 0.0
    return args
