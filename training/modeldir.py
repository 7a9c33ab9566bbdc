"""A model dir as the indexer and the app open it: complete, safetensors only (never a pickle), fetched from the
Hugging Face Hub when given as an id, and loaded."""

from __future__ import annotations

import hashlib
from pathlib import Path

from transformers import ConvNextImageProcessorPil

from training.model import ConvNextForImageHashing

# What a model dir is, for whatever copies it (a Space's bundle, a push to the Hub): weights, configs (model, image
# processor, metrics), the card and its plot; never the Trainer's checkpoints.
MODEL_FILES = ("*.safetensors", "*.json", "README.md", "*.png")
SURFACE_DIR = "surface"  # a model's encoder for photos on real surfaces (training.surface_encoder), where it has one


def model_files(path: str | Path) -> list[str]:
    """The files that make a model dir (MODEL_FILES, its own and its surface encoder's), relative to it."""
    path = Path(path)
    return sorted(str(f.relative_to(path)) for folder in (path, path / SURFACE_DIR) for pattern in MODEL_FILES
                  for f in folder.glob(pattern) if f.is_file())


def check_model_dir(path: str | Path) -> Path:
    """Refuse a model dir that is incomplete or holds pickled weights: we never unpickle.

    A Hub model id (`owner/name`) that is not a local folder is fetched, safetensors and JSON only."""
    path = Path(path)
    if not path.is_dir() and len(path.parts) == 2 and not str(path).startswith((".", "/")):
        from huggingface_hub import snapshot_download

        try:
            path = Path(snapshot_download(str(path), allow_patterns=["*.safetensors", "*.json", "*.md"]))
        except Exception as e:  # offline, or no such repo: say which, and what to do
            raise FileNotFoundError(
                f"model {path} is neither a local dir nor reachable on the Hugging Face Hub ({type(e).__name__}); "
                "train one with `python -m training` or check the id"
            ) from None
    if not path.is_dir():
        raise FileNotFoundError(f"model dir {path} does not exist; train one with `python -m training --output {path}`")
    missing = [n for n in ("config.json", "model.safetensors", "preprocessor_config.json") if not (path / n).is_file()]
    pickles = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt*"))
    if pickles and "model.safetensors" in missing:
        raise ValueError(f"model dir {path} holds pickled weights ({', '.join(pickles)}); only safetensors are loaded")
    if missing:
        raise FileNotFoundError(f"model dir {path} is missing {', '.join(missing)}; retrain or copy the whole dir")
    return path


def load_model(path: str | Path) -> tuple[ConvNextForImageHashing, ConvNextImageProcessorPil]:
    path = check_model_dir(path)
    net = ConvNextForImageHashing.from_pretrained(path, use_safetensors=True)
    net.eval()
    return net, ConvNextImageProcessorPil.from_pretrained(path)


def fingerprint(path: str | Path) -> str:
    """sha256 of a model dir's weights: what a collection records as `model_sha256`, and what a surface encoder
    (training.surface_encoder) records as the model it was trained for."""
    h = hashlib.sha256()
    with open(Path(path) / "model.safetensors", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
