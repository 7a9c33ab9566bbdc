"""The binary code: what it is the sign of, and how long it is.

A model's code is the sign of its hash logits (which class: `n_bits`). A model trained with an instance head and
`instance_bits` writes those `class_code_weight` times (so that the class still weighs as much as the image in a
Hamming distance) and adds bits that say which image of the class it is: the sides of `instance_code_bits` fixed random
hyperplanes on which its normalised instance output lies (SimHash, Charikar 2002: the share of such bits two vectors
differ in estimates the angle between them, more closely the more bits there are). A model from before those
hyperplanes (no `instance_code_bits` in its config) adds the instance output's own signs, one bit a dimension.
The hyperplanes are drawn from `instance_code_seed` by NumPy's legacy generator, whose stream never changes: the
config alone fixes them, so a model dir's codes are the same on every machine and in every version.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

INSTANCE_CODE_BITS = 192  # a new instance head's bits in the code (README: "Codes that carry the image")
CLASS_CODE_WEIGHT = 3  # ... and how many times each hash-layer bit is written before them


@lru_cache(maxsize=8)
def _hyperplanes(bits: int, dim: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.RandomState(seed).standard_normal((bits, dim)).astype(np.float32))


def instance_hyperplanes(config) -> torch.Tensor | None:
    """The [instance_code_bits, instance_dim] hyperplanes of a model's instance bits, or None for the instance
    output's own signs."""
    bits = int(getattr(config, "instance_code_bits", 0) or 0)
    if not bits:
        return None
    return _hyperplanes(bits, int(config.instance_dim), int(getattr(config, "instance_code_seed", 0)))


def code_logits(config, out) -> torch.Tensor:
    """What the binary code is the sign of: the hash logits; with `instance_bits` (set for a model trained with an
    instance head), then the normalised instance output's projections on the hyperplanes (or its own values)."""
    if out.instance is None or not getattr(config, "instance_bits", False):
        return out.hash_logits.float()
    instance = F.normalize(out.instance.float(), dim=-1)
    if (planes := instance_hyperplanes(config)) is not None:
        instance = instance @ planes.to(instance.device).T
    return torch.cat([out.hash_logits.float().repeat(1, _class_weight(config)), instance], dim=-1)


def _class_weight(config) -> int:
    return int(getattr(config, "class_code_weight", 1) or 1)


def code_length(config) -> int:
    """The binary code's length in bits (what a collection records as `n_bits`)."""
    if not getattr(config, "instance_bits", False):
        return int(config.n_bits)
    instance = int(getattr(config, "instance_code_bits", 0) or config.instance_dim)
    return int(config.n_bits) * _class_weight(config) + instance


def recode_stored(config, float_vector: np.ndarray, code: np.ndarray) -> np.ndarray:
    """The code this config makes, from a point's stored vectors when a model from before the hyperplanes (the same
    weights, its instance output's own signs in the code) made them: the class bits as stored, the instance bits
    from the float vector's instance part (the mean of the views' normalised instance outputs, scaled: the same
    sides of every hyperplane). 0/1 bytes."""
    planes = instance_hyperplanes(config)
    n_bits = int(config.n_bits)
    if planes is None or len(code) != n_bits + int(config.instance_dim):
        raise ValueError(f"a {len(code)}-bit code is not one this model made before its instance hyperplanes")
    instance = np.asarray(float_vector, dtype=np.float32)[n_bits:] @ planes.numpy().T
    class_bits = np.tile(np.asarray(code, dtype=np.uint8)[:n_bits], _class_weight(config))
    return np.concatenate([class_bits, (instance > 0).astype(np.uint8)])
