"""Gradio front end: a client of indexer/ (its embedder and store)."""
