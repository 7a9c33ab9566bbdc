"""Which store a location names: a Qdrant server, qdrant-client's local mode, or the embedded engine's folder."""

from __future__ import annotations

from indexer.store import Store
from training.config import qdrant_api_key, resolve_location


def open_store(
    collection: str,
    location: str | None = None,
    api_key: str | None = None,
    shards: int = 1,
    replicas: int = 1,
    quantized: bool = False,
) -> Store:
    """`location`: an http(s) URL (a Qdrant server), `:memory:` (qdrant-client local mode), or a folder
    (the embedded engine); unset, `training.config.resolve_location` decides, and the key defaults to
    `$QDRANT_API_KEY`. `quantized`: a new embedded collection for millions of points on a
    small machine (binary quantization, no HNSW graph); a server collection is always quantized."""
    from indexer.edge import EdgeStore
    from indexer.server import ClientStore

    location = resolve_location(location)
    if location.startswith(("http://", "https://")):
        return ClientStore(collection, url=location, api_key=api_key or qdrant_api_key(),
                           shards=shards, replicas=replicas)
    if location == ":memory:":
        return ClientStore(collection, location=location)
    if location.startswith("local:"):
        return ClientStore(collection, path=location.removeprefix("local:"))
    return EdgeStore(location, collection, quantized=quantized)
