"""The model card (README.md of a model dir): what the model is, how it was trained, its figures, how to load it."""

from __future__ import annotations

from pathlib import Path


def write_model_card(out: Path, metrics: dict, names: list[str]) -> None:
    float_vector = ("the normalised tanh code beside an instance head's output (trained on two views of every "
                    "image)" if metrics.get("instance_dim") else "the pooled features")
    made = (f"set from `{metrics['dataset']}` without training (the pretrained backbone as it is: "
            "training/searcher.py)" if metrics.get("kind") else f"trained on `{metrics['dataset']}`")
    code = ("the hash layer and then of the instance head's output" if metrics.get("instance_dim")
            else "the hash layer")  # training.codes.code_logits: a model trained with an instance head has both
    if planes := metrics.get("instance_code_bits"):
        weight = metrics.get("class_code_weight", 1)
        code = (f"the hash layer{f' (each written {weight} times)' if weight > 1 else ''} and then of the instance "
                f"head's output projected on {planes} fixed random hyperplanes (`instance_code_seed` in `config.json`)")
    views = metrics.get("embed_views", "image")
    stages = metrics.get("stages", [])
    start = stages[0]["model"] if stages else metrics["model"]
    card = f"""---
library_name: transformers
pipeline_tag: image-feature-extraction
tags: [convnext, image-retrieval, deep-hashing]
---
# {out.name}

ConvNeXt ({start}) with a {metrics['bits']}-bit hash layer, {made}
for image search: {float_vector} is the float vector (cosine), the signs of {code} the binary code (Hamming
distance).{_stages(stages)}

{_table(metrics)}

Labels: {', '.join(names)}.

## The app's vectors, from this dir

The search app prepares every picture like the collection's images (the image profile in `config.json`: find
the object, frame it as the collection frames its objects), pads it to a square with its border colour (never a
crop), and embeds it as the mean over the views `embed_views` names in `config.json` (`{views}`). With
`transformers` and this project's `training` package:

```python
{RECIPE.strip()}
```

`vector` is the collection's `float` vector and `code` its binary code, as the app computes them (to 1e-4:
this recipe is a test of the project). The saved image processor resizes without cropping only a square
picture: `pipeline("image-feature-extraction", model=path)` on a picture as it is gives the backbone's pooled
features of a centre crop, which are not these vectors.
"""
    (out / "README.md").write_text(card)


def _stages(stages: list[dict]) -> str:
    """A model trained in stages (each fine-tuning the last one's model dir): the recipe, stage by stage."""
    if len(stages) < 2:
        return ""
    steps = [f"{s['epochs']:g} epoch{'' if s['epochs'] == 1 else 's'} from `{s['model']}` at learning rate "
             f"{s['learning_rate']:g} ({s['train_seconds']:.0f} s)" for s in stages]
    return f" Trained in {len(stages)} stages: " + "; then ".join(steps) + "."


def _table(metrics: dict) -> str:
    """The card's figures: those this model dir has (epochs and time stage by stage for a model trained in stages)."""
    stages, args = metrics.get("stages", []), metrics.get("args", {})
    scale = args.get("body_lr_scale")  # None: a model trained before the option, at one rate
    body = f", the ConvNeXt body at {scale:g} of it" if scale not in (None, 1) else ""
    rate = args.get("learning_rate")

    def staged(key: str, single):
        return " + ".join(f"{s[key]:g}" for s in stages) if len(stages) > 1 else single

    rows = [("test accuracy", metrics.get("test_accuracy"), lambda v: f"{v:.4f} (chance: {metrics['chance']:.4f})"
             if "chance" in metrics else f"{v:.4f}"),
            ("test accuracy, one view", metrics.get("test_accuracy_single_view"), lambda v: f"{v:.4f}"),
            ("embedding views", metrics.get("embed_views"), str),
            ("train samples", metrics.get("train_samples"), str),
            ("epochs", staged("epochs", metrics.get("epochs")), str),
            ("learning rate", staged("learning_rate", None if rate is None else f"{rate:g}"), lambda v: f"{v}{body}"),
            ("training time (s)", staged("train_seconds", metrics.get("train_seconds")), str),
            ("parameters", metrics.get("parameters"), lambda v: f"{v:,}")]
    lines = ["| metric | value |", "|---|---|"]
    return "\n".join(lines + [f"| {name} | {show(value)} |" for name, value, show in rows if value is not None])


# How to get the app's vectors with transformers alone (and this project's `training` package): the model card
# shows it, and tests/test_training.py runs it against the app's embedder. `path` and `image` are given.
RECIPE = """
import numpy as np
import torch
from PIL import ImageOps
from transformers import AutoImageProcessor

from training.images import border_colour, to_rgb
from training.model import ConvNextForImageHashing
from training.prepare import ImageProfile, prepare
from training.views import view_outputs

model = ConvNextForImageHashing.from_pretrained(path).eval()
processor = AutoImageProcessor.from_pretrained(path)
picture, _ = prepare(to_rgb(image), ImageProfile.from_dict(model.config.image_profile))
side = max(picture.size)  # a square, padded with the picture's border colour
square = ImageOps.pad(picture, (side, side), color=tuple(int(v) for v in border_colour(np.asarray(picture))))
pixels = processor(square, return_tensors="pt")["pixel_values"]
features, logits, probs = view_outputs(model, pixels, model.config.embed_views)  # per view: the app's views
vector = torch.nn.functional.normalize(features.mean(0)[0], dim=0)
code = (logits.mean(0)[0] > 0).to(torch.uint8)
"""
