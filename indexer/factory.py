"""Which store a location names: a Qdrant server, qdrant-client's local mode, or the embedded engine's folder."""

from __future__ import annotations

import os
from pathlib import Path

from indexer.store import Store


def resolve_location(location: str | None = None, data_dir: str | Path = "data") -> str:
    """Where a collection lives, the one rule for every command: `location` if given, else $QDRANT_URL (a
    server), else $QDRANT_PATH (a folder), else <data_dir>/qdrant (the embedded engine)."""
    return location or os.environ.get("QDRANT_URL") or os.environ.get("QDRANT_PATH") or str(Path(data_dir) / "qdrant")


def open_store(
    collection: str,
    location: str | None = None,
    api_key: str | None = None,
    shards: int = 1,
    replicas: int = 1,
    quantized: bool = False,
) -> Store:
    """`location`: an http(s) URL (a Qdrant server), `:memory:` (qdrant-client local mode), or a folder
    (the embedded engine; default `$QDRANT_PATH` or `data/qdrant`). The URL and key default to
    `$QDRANT_URL` and `$QDRANT_API_KEY`. `quantized`: a new embedded collection for millions of points on a
    small machine (binary quantization, no HNSW graph); a server collection is always quantized."""
    from indexer.edge import EdgeStore
    from indexer.server import ClientStore

    location = resolve_location(location)
    if location.startswith(("http://", "https://")):
        return ClientStore(collection, url=location, api_key=api_key or os.environ.get("QDRANT_API_KEY"),
                           shards=shards, replicas=replicas)
    if location == ":memory:":
        return ClientStore(collection, location=location)
    if location.startswith("local:"):
        return ClientStore(collection, path=location.removeprefix("local:"))
    return EdgeStore(location, collection, quantized=quantized)
