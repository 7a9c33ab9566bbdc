"""The settings that the app, the indexer, evaluation and the Space share, resolved in one place.

Each has an environment variable (Docker, Spaces secrets) and a default here; the commands' flags (`add_flags`,
one style for `python -m app`, `python -m indexer` and `python -m training`) default to the variable, so a flag
wins, then the environment, then the default.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

ENV = {"model": "MODEL_DIR", "collection": "COLLECTION", "data_dir": "DATA_DIR", "dataset": "DATASET",
       "backbone": "BACKBONE"}
DEFAULTS_FILE = Path(__file__).with_name("defaults.env")  # also read by the Makefile, compose and the Docker image


def _read_defaults(path: Path = DEFAULTS_FILE) -> dict[str, str]:
    """`NAME=value` lines (comments and blank lines skipped), by setting name."""
    values = dict(line.split("=", 1) for line in path.read_text().splitlines()
                  if line.strip() and not line.lstrip().startswith("#"))
    return {name: values[var].strip() for name, var in ENV.items()}


DEFAULTS = _read_defaults()


def default(name: str) -> str:
    """A shared setting's value from its environment variable, else its default."""
    return os.environ.get(ENV[name]) or DEFAULTS[name]


def resolve_location(location: str | None = None, data_dir: str | Path | None = None) -> str:
    """Where a collection lives, the one rule for every command: `location` if given, else $QDRANT_URL (a
    server), else $QDRANT_PATH (a folder), else <data dir>/qdrant (the embedded engine)."""
    return (location or os.environ.get("QDRANT_URL") or os.environ.get("QDRANT_PATH")
            or str(Path(data_dir or default("data_dir")) / "qdrant"))


def qdrant_api_key() -> str | None:
    """A Qdrant server's API key: from the environment only ($QDRANT_API_KEY), never a flag (flags show in `ps`)."""
    return os.environ.get("QDRANT_API_KEY") or None


def embed_precision() -> str:
    """$EMBED_PRECISION: float32, bfloat16, or auto (bfloat16 where the hardware runs it natively)."""
    return os.environ.get("EMBED_PRECISION") or "auto"


def embed_views() -> str | None:
    """$EMBED_VIEWS: one of training.views.VIEWS; unset, the model's own (recorded at training)."""
    return os.environ.get("EMBED_VIEWS") or None


def surface_encoder_enabled() -> bool:
    """`SURFACE_ENCODER=0` (or off/false/no) embeds pictures found on a surface with the model itself, not with its
    surface encoder (training.surface_encoder); the default uses the encoder where the model dir has one."""
    return _switched_on("SURFACE_ENCODER")


def preparation_enabled() -> bool:
    """`PREPARE=0` (or off/false/no) searches and indexes pictures as they are; the default prepares them."""
    return _switched_on("PREPARE")


def _switched_on(variable: str) -> bool:
    """An on/off setting, on unless its variable says 0, off, false or no."""
    return os.environ.get(variable, "1").strip().lower() not in ("0", "off", "false", "no")


FLAGS = {
    "model": (("--model",), dict(help="model dir written by `python -m training` ($MODEL_DIR; default %(default)s)")),
    "collection": (("--collection",), dict(help="Qdrant collection ($COLLECTION; default %(default)s)")),
    "qdrant": (("--qdrant", "--url"), dict(
        dest="qdrant", default=None,
        help="where the collection lives: a folder (the embedded engine), an http(s) URL of a Qdrant server (its "
             "key from $QDRANT_API_KEY) or :memory:; default $QDRANT_URL, else $QDRANT_PATH, else <data dir>/qdrant")),
    "data_dir": (("--data-dir",), dict(help="uploads, examples and the embedded index ($DATA_DIR; default "
                                            "%(default)s)")),
    "dataset": (("--dataset",), dict(help="Hub id, image folder, or fashion_mnist ($DATASET; default %(default)s)")),
}


def add_flags(parser: argparse.ArgumentParser, *names: str) -> None:
    """The shared flags `names` (model, collection, qdrant, data_dir), defaulting to their environment."""
    for name in names:
        flags, kwargs = FLAGS[name]
        parser.add_argument(*flags, **({"default": default(name)} if name in DEFAULTS else {}), **kwargs)
