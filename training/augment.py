"""Training augmentation: what a person's photo may still differ by after preparation, applied to whole batches
(`robust_augment`, by `RobustCollator`), and the simpler per-image ones (`--augment flip…`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import default_data_collator

from training.model import partner_rows


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


def mix_channels(x: torch.Tensor, p: float = 0.8) -> torch.Tensor:
    """A batch [n, 3, s, s] with, for a share `p` of its images, each channel a random convex mix of the three (a
    tint, another hue); pretraining's views (training.pretrain.views) and `recolour` both draw with it."""
    n = len(x)
    mix = torch.eye(3) + 0.4 * torch.randn(n, 3, 3) * (torch.rand(n, 1, 1) < p)
    return torch.einsum("nij,njhw->nihw", mix.abs() / mix.abs().sum(-1, keepdim=True), x)


def outlines(x: torch.Tensor, ink: torch.Tensor, paper: torch.Tensor) -> torch.Tensor:
    """A batch [n, 3, s, s] (in any scale) as line drawings of the same pictures: where its brightness changes
    sharply (Sobel over the mean of the channels), lines 1-3 px wide in `ink` on `paper` ([n or 1, 3, 1, 1], in the
    batch's scale)."""
    n = len(x)
    grey = F.pad(x.mean(1, keepdim=True), (1, 1, 1, 1), mode="replicate")  # no line along the frame
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]).view(1, 1, 3, 3) / 4
    edges = torch.hypot(F.conv2d(grey, kx), F.conv2d(grey, kx.transpose(-1, -2)))
    strongest = edges.amax((1, 2, 3), keepdim=True).clamp_min(1e-3)
    lines = (edges > strongest * torch.empty(n, 1, 1, 1).uniform_(0.15, 0.35)).float()
    lines = torch.where(torch.rand(n, 1, 1, 1) < 0.5, F.max_pool2d(lines, 3, 1, 1), lines)
    return ink * lines + paper * (1 - lines)


def to_grey(x: torch.Tensor, share: float) -> torch.Tensor:
    """A batch [n, 3, s, s] with a share `share` of its images made grey (the mean of the channels)."""
    return torch.where(torch.rand(len(x), 1, 1, 1) < share, x.mean(1, keepdim=True).expand_as(x), x)


def recolour(x: torch.Tensor, p: float = 0.8, grey: float = 0.2) -> torch.Tensor:
    """A batch [n, 3, s, s] (normalised alike in every channel) as another print or drawing of the same pictures may
    differ: with probability `p` its channels mixed (`mix_channels`), with probability `grey` greyscale."""
    return to_grey(mix_channels(x, p), grey)


# The share of images seen on a generated surface at each step, when the training set has surface views.
SURFACE_SHARE = 0.5
# The share of second views drawn as outlines only (--outline-views; a folder's default).
OUTLINE_SHARE = 0.2
PAIR_AUGMENT = dict(p=0.8, noise=0.2, cut=0.1)  # robust_augment for the two views of an image (--instance-weight)


class RobustCollator:
    """default_data_collator, then `robust_augment` on the whole batch (one vectorised pass), while `model` trains
    (the Trainer collates validation batches with it too, with the model in eval mode: those stay as they are).

    `pairs`: two views of every image instead (PAIR_AUGMENT), the batch's rows [views 1; views 2], with `pairs`
    giving each row its partner's (the instance term, training.model.instance_loss).

    Items with `surface_values` (training.inputs.DecodedImages): for a share `surfaces` of the images, that view (the
    object on a generated surface, prepared) is used instead of the image; with pairs, it is added to the batch after
    the pairs' rows instead, as a third view whose partner is the image's first view (`views_of`: the instance term
    keeps every pair of small changes it learns from, and learns to find the image from its photo on a surface).

    `colour`: every view also recoloured (`recolour`), so that a tinted or greyscale copy stays near its original.

    `outline`: the share of second views (of images, without pairs) drawn as their outlines only (`outlines`), in
    `ink` ([3], normalised) on the background: another drawing style of the same picture."""

    def __init__(self, background: torch.Tensor, model: torch.nn.Module | None = None, pairs: bool = False,
                 surfaces: float = SURFACE_SHARE, colour: bool = False, outline: float = 0.0,
                 ink: torch.Tensor | None = None):
        self.background, self.model, self.pairs, self.surfaces = background, model, pairs, surfaces
        self.colour, self.outline, self.ink = colour, outline, ink

    def __call__(self, features: list[dict]) -> dict:
        batch = default_data_collator(features)
        on_surface = batch.pop("surface_values", None)
        if self.model is not None and not self.model.training:
            return batch
        x, labels = batch["pixel_values"], batch["labels"]
        seen = torch.rand(len(x)) < self.surfaces if on_surface is not None else torch.zeros(len(x), dtype=torch.bool)
        second = x if self.pairs or on_surface is None else torch.where(seen.view(-1, 1, 1, 1), on_surface, x)
        if self.outline > 0:
            drawn = outlines(second, self.ink.view(1, 3, 1, 1), self.background.view(1, 3, 1, 1))
            second = torch.where((torch.rand(len(x)) < self.outline).view(-1, 1, 1, 1), drawn, second)
        if not self.pairs:
            batch["pixel_values"] = self._coloured(robust_augment(second, self.background))
            return batch
        rows = torch.cat([x, second] + ([on_surface[seen]] if seen.any() else []))
        batch["pixel_values"] = self._coloured(robust_augment(rows, self.background, **PAIR_AUGMENT))
        batch["labels"] = torch.cat([labels, labels, labels[seen]])
        batch["pairs"] = partner_rows(len(x))
        if seen.any():  # a surface view's partner: its image's first view
            first = torch.arange(len(x))[seen]
            batch["pairs"] = torch.cat([batch["pairs"], first])
            batch["views_of"] = torch.cat([torch.arange(len(x)).repeat(2), first])
        return batch

    def _coloured(self, x: torch.Tensor) -> torch.Tensor:
        return recolour(x) if self.colour else x
