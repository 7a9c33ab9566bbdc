"""The views an image is embedded as (a model's `embed_views`, recorded by training.train.embed_views_for): every
consumer of a model's outputs — the embedder, training's test accuracy, the model card's recipe — runs the model on
the same views and takes the mean over them.

- "image": the image as it is;
- "image+mirror": and its left–right mirror (a model trained with flips);
- "image+mirror+smooth": and both smoothed by a 3×3 binomial kernel (a model trained robust, with an instance head).
  The smoothed views count for the instance part only (which image: the float vector's instance part and the
  instance bits), where they steady what pixel noise and resampling move; the class outputs (the hash layer's
  logits, the class probabilities) stay the mean over the plain views. (A model without an instance head, asked
  for them through EMBED_VIEWS, averages its pooled features over all four.)"""

from __future__ import annotations

import torch

from training.codes import code_logits
from training.model import ConvNextForImageHashing, retrieval_features

VIEWS = ("image", "image+mirror", "image+mirror+smooth")


def smooth(pixels: torch.Tensor) -> torch.Tensor:
    """`pixels` [B, C, H, W] smoothed by the 3×3 binomial kernel ([1, 2, 1] ⊗ [1, 2, 1] / 16), each channel on its
    own, the border repeated outwards (it is the background)."""
    k = torch.tensor([1.0, 2.0, 1.0], dtype=pixels.dtype, device=pixels.device)
    kernel = (k[:, None] * k[None, :] / 16).expand(pixels.shape[1], 1, 3, 3)
    padded = torch.nn.functional.pad(pixels, (1, 1, 1, 1), mode="replicate")
    return torch.nn.functional.conv2d(padded, kernel, groups=pixels.shape[1])


def view_stack(pixels: torch.Tensor, views: str) -> torch.Tensor:
    """Every view of `pixels` named by `views`, concatenated along the batch: the plain views (the image, its mirror)
    first, then the same smoothed (`smooth`), in the same order."""
    parts = views.split("+")
    stack = [pixels, pixels.flip(-1)] if "mirror" in parts else [pixels]
    if "smooth" in parts:
        stack += [smooth(t) for t in stack]
    return torch.cat(stack)


def view_count(views: str) -> int:
    """How many views `view_stack` makes of each image."""
    parts = views.split("+")
    return (2 if "mirror" in parts else 1) * (2 if "smooth" in parts else 1)


@torch.inference_mode()
def view_outputs(model: ConvNextForImageHashing, pixels: torch.Tensor, views: str) -> list[torch.Tensor]:
    """Retrieval features (`retrieval_features`), code logits (`code_logits`) and class probabilities of every view of
    `pixels`, float32, each shaped [n_views, n, dim] (the image first); one forward pass over all views. Callers take
    the mean over dim 0. A smoothed view carries its plain view's class outputs, so that the mean of those is the
    plain views' mean."""
    stack = view_stack(pixels, views)
    out = model(stack)
    if "smooth" in views.split("+"):  # the second half of the stack: the first half smoothed
        plain = len(stack) // 2
        out.hash_logits, out.logits = out.hash_logits[:plain].repeat(2, 1), out.logits[:plain].repeat(2, 1)
    outputs = (retrieval_features(model.config, out), code_logits(model.config, out), out.logits.float().softmax(-1))
    return [t.view(len(stack) // len(pixels), len(pixels), -1) for t in outputs]


def embed_outputs(model: ConvNextForImageHashing, pixels: torch.Tensor,
                  views: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What a picture is embedded as: its float vector (the mean of its views' retrieval features, unit length), its
    code logits and its class probabilities (the means over its views; `view_outputs`)."""
    features, codes, probs = (t.mean(0) for t in view_outputs(model, pixels, views))
    return torch.nn.functional.normalize(features, dim=-1), codes, probs
