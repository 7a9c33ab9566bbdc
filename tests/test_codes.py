"""The binary code's instance bits (training.codes): fixed random hyperplanes, set by a model's config alone."""

import numpy as np
import torch
from transformers import ConvNextConfig

from training.codes import INSTANCE_CODE_BITS, code_length, code_logits, instance_hyperplanes
from training.model import HashOutput


def _config(**extra) -> ConvNextConfig:
    return ConvNextConfig(n_bits=16, instance_dim=64, instance_bits=True, **extra)


def test_the_hyperplanes_come_from_the_config_alone_and_the_seed_changes_them():
    planes = instance_hyperplanes(_config(instance_code_bits=INSTANCE_CODE_BITS, instance_code_seed=0))
    assert planes.shape == (INSTANCE_CODE_BITS, 64)
    # NumPy's legacy generator, whose stream is frozen: the same planes on every machine and in every version
    expected = np.random.RandomState(0).standard_normal((INSTANCE_CODE_BITS, 64)).astype(np.float32)
    np.testing.assert_array_equal(planes.numpy(), expected)
    other = instance_hyperplanes(_config(instance_code_bits=INSTANCE_CODE_BITS, instance_code_seed=1))
    assert not torch.equal(planes, other)


def test_the_share_of_differing_instance_bits_follows_the_angle_between_instance_outputs():
    config = _config(instance_code_bits=INSTANCE_CODE_BITS)
    assert code_length(config) == 16 + INSTANCE_CODE_BITS
    g = torch.Generator().manual_seed(0)
    base = torch.randn(200, 64, generator=g)
    nearby = base + torch.rand(200, 1, generator=g) * 2 * torch.randn(200, 64, generator=g)  # every angle up to ~60°
    hash_logits = torch.randn(200, 16, generator=g)
    codes = [code_logits(config, HashOutput(hash_logits=hash_logits, instance=x)) > 0 for x in (base, nearby)]
    assert codes[0].shape == (200, 16 + INSTANCE_CODE_BITS)
    assert torch.equal(codes[0][:, :16], hash_logits > 0)  # the class bits come first, as the hash layer gives them
    differing = (codes[0][:, 16:] != codes[1][:, 16:]).float().mean(1)
    angle = torch.arccos(torch.nn.functional.cosine_similarity(base, nearby).clamp(-1, 1)) / torch.pi
    assert (differing - angle).abs().mean() < 0.03 and np.corrcoef(differing, angle)[0, 1] > 0.95


def test_the_class_bits_are_written_as_many_times_as_the_config_says():
    config = _config(instance_code_bits=32, class_code_weight=3)
    assert code_length(config) == 16 * 3 + 32
    hash_logits = torch.randn(4, 16)
    logits = code_logits(config, HashOutput(hash_logits=hash_logits, instance=torch.randn(4, 64)))
    assert logits.shape == (4, 80) and all(torch.equal(logits[:, 16 * i:16 * (i + 1)], hash_logits) for i in range(3))


def test_a_model_from_before_the_hyperplanes_keeps_its_instance_outputs_own_signs():
    config = _config()  # no instance_code_bits: a model dir trained before them, and the collections it built
    assert instance_hyperplanes(config) is None and code_length(config) == 16 + 64
    instance = torch.randn(4, 64)
    logits = code_logits(config, HashOutput(hash_logits=torch.randn(4, 16), instance=instance))
    assert torch.equal(logits[:, 16:] > 0, instance > 0)
