"""ConvNeXt with a hash layer between the pooled features and the classifier.

pooled features ──► hash (Linear → n_bits) ──► tanh ──► classifier
                        └─ sign > 0 is the image's binary code

The tanh outputs are pulled towards one fixed ±1 "hash centre" per class (CSQ, Yuan et al. 2020): ± pairs of
Hadamard rows when there are few enough classes, so any two classes' centres differ in at least n_bits/2 bits
and every bit is balanced over the classes. A quantisation term pushes |tanh| to 1 so the sign loses
little. The classifier on top keeps the model a classifier (predicted class, accuracy).

With `instance_dim` set, an instance head (Linear → instance_dim) on the pooled features learns to tell one image
from another: trained on two augmented views of every image, each view's nearest among the batch's views must be its
partner (NT-Xent, Chen et al. 2020; what copy-detection descriptors are trained with). The float vector is then both
parts, each L2-normalised: the tanh code (which class) and the instance output (which image of it), weighted so that
the instance part holds `instance_share` of the cosine (`retrieval_features`); the binary code, with `instance_bits`,
also says which image (`training.codes`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ConvNextConfig, ConvNextImageProcessorPil, ConvNextModel, ConvNextPreTrainedModel
from transformers.utils import ModelOutput

from training.images import RESAMPLE

# Configurations trained from scratch. `fmnist-small` is sized for 28×28 inputs on 2 CPU cores: patch 2 and three
# stages leave a 7×7 → 3×3 map for the last stage (four stages would leave 1×1). Layer scale starts at 1, not
# ConvNeXt's 1e-6 (meant for 300-epoch schedules): in a short run the residual branches must work at once.
PRESETS: dict[str, dict] = {
    "fmnist-small": dict(
        patch_size=2, num_stages=3, hidden_sizes=[32, 64, 128], depths=[2, 2, 2], image_size=28, drop_path_rate=0.05,
        layer_scale_init_value=1.0,
    ),
    # A few thousand parameters: what the tests train in seconds.
    "tiny": dict(patch_size=2, num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], image_size=32),
}
DEFAULT_MEAN = [0.5, 0.5, 0.5]
DEFAULT_STD = [0.5, 0.5, 0.5]


@dataclass
class HashOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    pooled: torch.Tensor | None = None
    hash_logits: torch.Tensor | None = None
    instance: torch.Tensor | None = None


def hash_centres(num_classes: int, n_bits: int, seed: int = 0) -> torch.Tensor:
    """One ±1 target code per class.

    Where a Sylvester Hadamard matrix fits, rows come in ± pairs (h, -h): any two centres are n_bits/2 or n_bits
    apart, and every bit is +1 for exactly half the classes, so the codes come out balanced (with rows alone,
    column 0 of a Sylvester matrix is +1 for every class: a bit that never changes). Otherwise: seeded random
    balanced codes.
    """
    if n_bits & (n_bits - 1) == 0 and num_classes <= n_bits:
        h = torch.ones(1, 1)
        while h.shape[0] < n_bits:
            h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
        rows = [sign * h[1 + i] for i in range((num_classes + 1) // 2) for sign in (1, -1)]
        return torch.stack(rows[:num_classes])
    g = torch.Generator().manual_seed(seed)
    half = torch.tensor([1.0] * (n_bits // 2) + [-1.0] * (n_bits - n_bits // 2))
    return torch.stack([half[torch.randperm(n_bits, generator=g)] for _ in range(num_classes)])


class ConvNextForImageHashing(ConvNextPreTrainedModel):
    """ConvNeXt backbone + `config.n_bits` hash layer + classifier over the tanh codes."""

    def __init__(self, config: ConvNextConfig):
        super().__init__(config)
        config.n_bits = getattr(config, "n_bits", 64)
        self.convnext = ConvNextModel(config)
        # Dropout on the pooled features, training only (no parameters: checkpoints load either way).
        self.dropout = nn.Dropout(getattr(config, "head_dropout", 0.0))
        self.hash = nn.Linear(config.hidden_sizes[-1], config.n_bits)
        self.classifier = nn.Linear(config.n_bits, config.num_labels)
        if getattr(config, "proxy_weight", 0.0):
            # Normalized softmax on the pooled features (Zhai & Wu 2019, temperature 0.05): one learned proxy per
            # class, so that cosine similarity of pooled features -- the `float` vector -- groups the classes.
            self.proxies = nn.Parameter(torch.randn(config.num_labels, config.hidden_sizes[-1]) * 0.02)
        if getattr(config, "instance_dim", 0):
            self.instance = nn.Linear(config.hidden_sizes[-1], config.instance_dim)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                pairs: torch.Tensor | None = None, views_of: torch.Tensor | None = None, **kwargs) -> HashOutput:
        """`pairs` (training with an instance head): for each of the batch's first len(pairs) rows, the row of
        another view of the same image; the instance term over those rows is added to the loss (rows after them learn
        the class terms only). `views_of`: the image each of those rows shows, when an image has more than two views
        (its view on a generated surface): see `instance_loss`."""
        pooled = self.convnext(pixel_values).pooler_output
        h = self.hash(self.dropout(pooled))
        z = torch.tanh(h)
        logits = self.classifier(z)
        loss = None
        if labels is not None:
            # Computed here, not kept as a buffer: from_pretrained builds the model on the meta device and leaves
            # non-persistent buffers uninitialised (fine-tuning a saved model trained towards garbage centres).
            centres = hash_centres(self.config.num_labels, self.config.n_bits).to(h.device, h.dtype)
            target = (centres[labels] + 1) / 2
            centre = F.binary_cross_entropy_with_logits(2 * h, target)  # sigmoid(2h) = (tanh(h)+1)/2
            quant = (z.abs() - 1).pow(2).mean()
            ce = F.cross_entropy(logits, labels, label_smoothing=getattr(self.config, "label_smoothing", 0.1))
            loss = ce + getattr(self.config, "centre_weight", 1.0) * centre
            loss = loss + getattr(self.config, "quant_weight", 0.1) * quant
            if hasattr(self, "proxies"):
                cos = F.normalize(pooled, dim=-1) @ F.normalize(self.proxies, dim=-1).T
                loss = loss + self.config.proxy_weight * F.cross_entropy(cos / 0.05, labels)
        instance = self.instance(pooled) if hasattr(self, "instance") else None
        if pairs is not None and instance is not None:
            temperature = getattr(self.config, "instance_temperature", INSTANCE_TEMPERATURE)
            term = instance_loss(instance[: len(pairs)], pairs, temperature, views_of)
            weight = getattr(self.config, "instance_weight", INSTANCE_WEIGHT)
            loss = weight * term if loss is None else loss + weight * term
        return HashOutput(loss=loss, logits=logits, pooled=pooled, hash_logits=h, instance=instance)


# The instance head's defaults (config values `instance_*` override them).
INSTANCE_DIM = 64
INSTANCE_WEIGHT = 0.5
INSTANCE_TEMPERATURE = 0.1
# The instance part's share of the float vector's cosine; the code part holds the rest. More finds a slightly changed
# picture's very image more often and ranks whole classes less cleanly (README: "Your photos" has the trade).
INSTANCE_SHARE = 0.3


def partner_rows(n: int) -> torch.Tensor:
    """`pairs` for a batch of two views of `n` images laid out as [views 1; views 2]: each row's partner row."""
    return torch.cat([torch.arange(n, 2 * n), torch.arange(n)])


def instance_loss(z: torch.Tensor, pairs: torch.Tensor, temperature: float,
                  views_of: torch.Tensor | None = None) -> torch.Tensor:
    """NT-Xent: each row's cosine to its partner row (`pairs`), against its cosines to every other row. With
    `views_of` (the image each row shows), another view of the row's own image is neither its partner nor a
    negative: an image's view on a surface (partner: its first view) is drawn to it, and pushes nothing of it away."""
    z = F.normalize(z.float(), dim=-1)
    sim = (z @ z.T) / temperature
    hidden = torch.eye(len(z), dtype=torch.bool, device=z.device)
    if views_of is not None:
        hidden = views_of[:, None] == views_of[None, :]
        hidden[torch.arange(len(z)), pairs] = False
    return F.cross_entropy(sim.masked_fill(hidden, float("-inf")), pairs)


def retrieval_features(config, out: HashOutput) -> torch.Tensor:
    """Each image's float vector before the mean over views and the final L2 normalisation: the pooled features;
    with an instance head, the normalised tanh code and instance output, weighted by `instance_share`."""
    if out.instance is None:
        return out.pooled.float()
    share = getattr(config, "instance_share", INSTANCE_SHARE)
    code = F.normalize(torch.tanh(out.hash_logits.float()), dim=-1) * (1 - share) ** 0.5
    return torch.cat([code, F.normalize(out.instance.float(), dim=-1) * share**0.5], dim=-1)


def retrieval_dim(config) -> int:
    """The float vector's length (what a collection records as `float_dim`)."""
    if getattr(config, "instance_dim", 0):
        return int(config.n_bits) + int(config.instance_dim)
    return int(config.hidden_sizes[-1])


def build_model(
    model: str, *, n_bits: int, id2label: dict[int, str], image_size: int | None = None,
    overrides: dict | None = None,
) -> tuple[ConvNextForImageHashing, ConvNextImageProcessorPil]:
    """A preset name trains from scratch; anything else is a checkpoint (Hub id or local dir) to fine-tune.

    `overrides` are config values set on top: a preset's architecture (`hidden_sizes`, `depths`, ...) or this
    model's training knobs, `head_dropout`, `centre_weight`, `quant_weight`, `proxy_weight`, `label_smoothing`,
    `instance_dim` (an instance head; fine-tuning a checkpoint without one adds it), `instance_weight`,
    `instance_temperature`, `instance_share`, `instance_bits`."""
    label2id = {name: i for i, name in id2label.items()}
    common = dict(num_labels=len(id2label), id2label=id2label, label2id=label2id, n_bits=n_bits)
    overrides = dict(overrides or {})
    if clash := sorted(set(overrides) & set(common)):
        raise ValueError(
            f"config overrides cannot set {', '.join(clash)}: labels come from the dataset, bits from --bits"
        )
    if model in PRESETS:
        preset = {**PRESETS[model], **overrides}
        size = image_size or preset.pop("image_size")
        preset.pop("image_size", None)
        config = ConvNextConfig(num_channels=3, image_size=size, **preset, **common)
        config.architectures = [ConvNextForImageHashing.__name__]
        net = ConvNextForImageHashing(config)
        processor = make_processor(size)
    else:
        # ignore_mismatched_sizes: the checkpoint's own classifier (e.g. 1000 ImageNet classes) is replaced.
        # The config first: overrides the checkpoint's config lacks (instance_dim) are values, not model arguments.
        config = ConvNextConfig.from_pretrained(model, **common)
        for key, value in overrides.items():
            setattr(config, key, value)
        # float32 to train in, whatever the checkpoint stores (training.pretrain saves its backbone in float16)
        net = ConvNextForImageHashing.from_pretrained(model, config=config, ignore_mismatched_sizes=True,
                                                      dtype=torch.float32)
        net.config.architectures = [ConvNextForImageHashing.__name__]
        # The checkpoint's own processor may centre-crop (crop_pct 0.875): the dir is saved with the product's.
        given = ConvNextImageProcessorPil.from_pretrained(model)
        processor = make_processor(image_size or processor_size(given), given.image_mean, given.image_std)
    return net, processor


PRECISIONS = ("auto", "float32", "bfloat16")


def native_bfloat16(device: torch.device) -> bool:
    """bfloat16 matmuls run natively: a GPU that has them, or a CPU with AVX-512 BF16 or AMX (via oneDNN).

    Elsewhere bfloat16 is emulated and slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_precision(precision: str, device: torch.device, what: str, hint: str) -> str:
    """auto → bfloat16 where it runs natively, float32 elsewhere; an unknown name is refused, with `hint`."""
    if precision not in PRECISIONS:
        raise ValueError(f"{what} must be one of {', '.join(PRECISIONS)}, not {precision!r} ({hint})")
    if precision == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    return precision


def make_processor(size: int, mean=DEFAULT_MEAN, std=DEFAULT_STD) -> ConvNextImageProcessorPil:
    """The processor a model dir is saved with. crop_pct=1 and bilinear resampling: for a square picture (what
    preparation gives, or a picture padded to a square with its border colour: the model card's recipe) it computes
    exactly the tensor training.images.preprocess does (tests/test_training.py checks the card's recipe)."""
    return ConvNextImageProcessorPil(
        size={"shortest_edge": size}, crop_pct=1.0, image_mean=list(mean), image_std=list(std), do_convert_rgb=True,
        resample=int(RESAMPLE),
    )


def processor_size(processor: ConvNextImageProcessorPil) -> int:
    return int(processor.size["shortest_edge"])
