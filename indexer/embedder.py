"""How an image becomes vectors: the model's L2-normalised retrieval features (`float`: pooled features, or code and
instance parts, training.model.retrieval_features) and the signs of the code logits (`code`: the hash layer's, and
the instance part's bits for a model with `instance_bits`, training.codes.code_logits)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from training import config as settings
from training.codes import code_length
from training.model import processor_size, resolve_precision, retrieval_dim
from training.modeldir import fingerprint, load_model
from training.prepare import ImageProfile, model_input
from training.shading import SHADINGS
from training.surface_encoder import load_surface_encoder
from training.views import VIEWS, embed_outputs, view_count


@dataclass
class Embeddings:
    floats: np.ndarray  # [n, float_dim] float32, unit length
    codes: np.ndarray  # [n, n_bits] uint8 0/1 (training.codes.code_length)
    probs: np.ndarray  # [n, num_labels] float32, the classifier's softmax
    prepared: list[dict] | None = None  # what training.prepare.prepare did to each image


class Embedder:
    """Batched embedding, `batch_size` images per forward pass. On hardware with native bfloat16 the weights and
    activations are bfloat16 (layer norms accumulate in float32; the outputs are returned as float32); how fast,
    and how close to float32, is measured by bench/embedding.py (README: "Benchmarks")."""

    def __init__(self, model_dir: str | Path, batch_size: int = 128, device: str | None = None,
                 precision: str | None = None, views: str | None = None):
        self.model_dir = Path(model_dir)
        self.model, processor = load_model(self.model_dir)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision = resolve_precision(
            precision or settings.embed_precision(), self.device,
            "embedding precision", "set EMBED_PRECISION or leave it unset",
        )
        # training.views.VIEWS; unset, what training recorded (training.train.embed_views_for).
        self.views = views or settings.embed_views() or getattr(self.model.config, "embed_views", "image")
        if self.views not in VIEWS:
            raise ValueError(f"embedding views must be one of {', '.join(VIEWS)}, not {self.views!r} "
                             "(set EMBED_VIEWS or leave it unset)")
        self.dtype = torch.bfloat16 if self.precision == "bfloat16" else torch.float32
        self.model.to(self.device, self.dtype)
        weights = fingerprint(self.model_dir)
        # The model's encoder for pictures found on a real surface (training.surface_encoder), where it has one.
        self.surface_model = load_surface_encoder(self.model_dir, weights)
        if self.surface_model is not None:
            self.surface_model.to(self.device, self.dtype)
        self.batch_size = batch_size
        self.size = processor_size(processor)
        self.mean, self.std = processor.image_mean, processor.image_std
        config = self.model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.n_bits = code_length(config)
        self.float_dim = retrieval_dim(config)
        # The training set's image profile: what a collection without one of its own is prepared like.
        self.profile = ImageProfile.from_dict(getattr(config, "image_profile", None))
        # What a collection records about the model that built it (and checks before every search).
        self.meta = {
            "model": self.model_dir.name,
            "model_sha256": weights,
            "n_bits": self.n_bits,
            "float_dim": self.float_dim,
            "labels": self.labels,
            "precision": self.precision,  # informational: float32 and bfloat16 embeddings search each other
            "views": self.views,
        }

    def label_id(self, label: str | None) -> int:
        """A label's index among the model's classes; -1 for one it does not have (an upload's own label)."""
        return self.labels.index(label) if label in self.labels else -1

    def profile_for(self, meta: dict | None) -> tuple[ImageProfile | None, str]:
        """The profile that pictures searched in (or added to) a collection are prepared with, and where it comes
        from: the collection's own (recorded when it was indexed), "off" for a collection indexed as is or while
        PREPARE=0, else (a collection from before profiles) the model's training set's, else "none"."""
        meta = meta or {}
        if not settings.preparation_enabled():
            return None, "off"
        if "image_profile" in meta:
            own = ImageProfile.from_dict(meta["image_profile"])
            return (own, "collection") if own is not None else (None, "off")
        return (self.profile, "model") if self.profile is not None else (None, "none")

    def preprocess(self, images: list[Image.Image], profile: ImageProfile | None) -> tuple[torch.Tensor, list[dict]]:
        """Prepare each image like the collection's (`profile`; None: as it is), then the model's preprocessing."""
        return model_input(images, profile, self.size, self.mean, self.std)

    def embed_pixels(self, pixels: torch.Tensor, prepared: list[dict] | None = None) -> Embeddings:
        """`pixels` (preprocessed) embedded by the model; those that preparation found on a surface (`prepared`,
        what `preprocess` reported) by its surface encoder where it has one (their `prepared` entry says so)."""
        on_surface = np.array([bool(p.get("surface")) for p in prepared or []] or [False] * len(pixels))
        if self.surface_model is None or not on_surface.any():
            return self._embedded(self.model, pixels)
        for i in np.flatnonzero(on_surface):
            prepared[i]["surface_encoder"] = True
        # Each picture run once, by the one that embeds it; the answers put back in the pictures' order.
        parts = [(rows, self._embedded(model, pixels[torch.from_numpy(rows)]))
                 for model, rows in ((self.model, np.flatnonzero(~on_surface)),
                                     (self.surface_model, np.flatnonzero(on_surface))) if len(rows)]
        order = np.argsort(np.concatenate([rows for rows, _ in parts]))
        return Embeddings(*(np.concatenate([getattr(emb, name) for _, emb in parts])[order]
                            for name in ("floats", "codes", "probs")))

    def _embedded(self, model, pixels: torch.Tensor) -> Embeddings:
        floats, codes, probs = [], [], []
        step = max(1, self.batch_size // view_count(self.views))  # images per forward pass
        for start in range(0, len(pixels), step):
            x = pixels[start : start + step].to(self.device, self.dtype)
            features, code_logits, p = embed_outputs(model, x, self.views)
            floats.append(features.cpu())
            codes.append((code_logits > 0).to(torch.uint8).cpu())
            probs.append(p.cpu())
        return Embeddings(
            floats=torch.cat(floats).numpy().astype(np.float32),
            codes=torch.cat(codes).numpy(),
            probs=torch.cat(probs).numpy().astype(np.float32),
        )

    def embed(self, images: list[Image.Image], profile: ImageProfile | None) -> Embeddings:
        pixels, prepared = self.preprocess(images, profile)
        emb = self.embed_pixels(pixels, prepared)
        emb.prepared = prepared
        return emb

    def embed_readings(self, image: Image.Image, profile: ImageProfile | None) -> list[Embeddings]:
        """One picture embedded as each way of drawing it that preparation offers (training.prepare.readings: a grey
        collection's object on a surface by its darkness and by its lightness), its object found once."""
        pixels, prepared = model_input([image], profile, self.size, self.mean, self.std, SHADINGS)
        emb = self.embed_pixels(pixels, prepared)
        return [Embeddings(emb.floats[i : i + 1], emb.codes[i : i + 1], emb.probs[i : i + 1], [info])
                for i, info in enumerate(prepared)]
