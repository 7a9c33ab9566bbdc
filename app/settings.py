"""The app's settings: the shared ones (training/config.py) and what is about serving: uploads, image URLs, who
may write, fair use, caps. `python -m app` resolves them from flags and the environment (app/__main__.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.fetch import MAX_REDIRECTS, TIMEOUT_S
from indexer import ranking
from indexer.uploads import image_dir_of
from training import config
from training.config import resolve_location

DUPLICATE_COSINE = 0.98  # near-duplicates: cosine at least this (the API's and the page's default)


@dataclass
class Settings:
    model_dir: str = config.DEFAULTS["model"]
    collection: str = config.DEFAULTS["collection"]
    qdrant: str | None = None  # folder, URL or :memory:; None: training.config.resolve_location
    data_dir: str = config.DEFAULTS["data_dir"]
    max_upload_mb: float = 10.0
    oversampling: int = ranking.OVERSAMPLING
    examples: int = 10
    url_allow_networks: str = ""  # networks an image URL may point into although not public (app/fetch.py)
    url_timeout_s: float = TIMEOUT_S
    url_max_redirects: int = MAX_REDIRECTS
    # Who may write, and fair use (app/access.py)
    admin_token: str = field(default="", repr=False)  # never printed with the settings
    public: bool = False  # reachable beyond loopback, or a Space: read-only unless a credential is shown
    read_only: bool | None = None  # None: decided by `public` and the credentials configured
    oauth: bool = False  # "Sign in with Hugging Face" (a Space with hf_oauth, or Gradio's mocked login)
    write_users: str = ""  # Hugging Face users who may write (the Space's owner always may)
    write_orgs: str = ""  # ... and members of these organisations
    trusted_hops: int = 0  # proxies of the operator's in front of the app (app.access.client_address)
    requests_per_min: int = 120  # per client; 0: no limit
    upload_mb_per_min: float = 100.0  # pictures sent per client; 0: no limit
    max_k: int = 100  # results per page
    max_batch: int = 32  # images per /search_batch
    max_sample: int = 2000  # images sampled per /duplicates
    mcp: bool = True  # the endpoints as MCP tools for agents, at /gradio_api/mcp/ (Gradio's MCP server)

    @property
    def image_dir(self) -> Path:
        return image_dir_of(self.data_dir)

    @property
    def location(self) -> str:
        """Where the collection lives (training.config.resolve_location, with this app's data dir)."""
        return resolve_location(self.qdrant, self.data_dir)
