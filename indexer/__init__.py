"""Images → vectors (embedder) → Qdrant (store); build and evaluate indexes from the command line."""
