"""The model card (README.md of a model dir): what the model is, how it was trained, its figures, how to load it."""

from __future__ import annotations

from pathlib import Path


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
