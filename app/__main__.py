"""python -m app [--model DIR] [--collection NAME] [--qdrant LOCATION] [--data-dir DIR] [--host H] [--port P]

Every flag has an environment variable (for Docker and Hugging Face Spaces secrets): MODEL_DIR, COLLECTION,
QDRANT_URL / QDRANT_PATH (+ QDRANT_API_KEY), DATA_DIR (the ones the indexer shares: training/config.py),
MAX_UPLOAD_MB, URL_ALLOW_NETWORKS, URL_TIMEOUT_S, GRADIO_SERVER_NAME, GRADIO_SERVER_PORT, TORCH_THREADS; access
and fair use: READ_ONLY, WRITE_USERS, WRITE_ORGS, OAUTH, RATE_LIMIT_PER_MIN, UPLOAD_MB_PER_MIN, MAX_K, MAX_BATCH,
MAX_SAMPLE, TRUSTED_HOPS, APP_AUTH_FILE, MCP. Secrets come from the environment only, never a flag (flags show in `ps`):
ADMIN_TOKEN, QDRANT_API_KEY.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading

from app.main import launch, read_auth_file
from app.service import SearchService, Settings
from training import config

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def parse_settings(argv: list[str] | None = None) -> tuple[Settings, argparse.Namespace]:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m app", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    config.add_flags(p, "model", "collection", "qdrant", "data_dir")
    p.add_argument("--max-upload-mb", type=float, default=float(env("MAX_UPLOAD_MB", Settings.max_upload_mb)),
                   help="largest upload or fetched image URL, in MB ($MAX_UPLOAD_MB)")
    p.add_argument("--url-allow-networks", default=env("URL_ALLOW_NETWORKS", ""),
                   help="networks an image URL may point into although private, loopback or link-local, e.g. "
                        "10.0.0.0/8,127.0.0.1 ($URL_ALLOW_NETWORKS; default: none, public addresses only)")
    p.add_argument("--url-timeout-s", type=float, default=float(env("URL_TIMEOUT_S", Settings.url_timeout_s)),
                   help="the most seconds an image URL may take to download ($URL_TIMEOUT_S)")
    p.add_argument("--host", default=env("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(env("GRADIO_SERVER_PORT", "7860")),
                   help="0: the first free port from 7860 up (the page's URL is printed) ($GRADIO_SERVER_PORT)")
    p.add_argument("--torch-threads", type=int, default=int(env("TORCH_THREADS", "1")),
                   help="threads per model run ($TORCH_THREADS); requests run side by side, hence 1")
    p.add_argument("--read-only", choices=["auto", "1", "0"], default=env("READ_ONLY", "auto"),
                   help="1: refuse writes without a credential; 0: allow them (an operator's choice); auto: read-only "
                        "when served beyond loopback, on a Space, or with ADMIN_TOKEN/OAuth set ($READ_ONLY)")
    p.add_argument("--write-users", default=env("WRITE_USERS", ""),
                   help="Hugging Face users who may write when signed in; a Space's owner always may ($WRITE_USERS)")
    p.add_argument("--write-orgs", default=env("WRITE_ORGS", ""),
                   help="... and members of these Hugging Face organisations ($WRITE_ORGS)")
    p.add_argument("--oauth", choices=["auto", "1", "0"], default=env("OAUTH", "auto"),
                   help="show 'Sign in with Hugging Face'; auto: on a Space with hf_oauth ($OAUTH)")
    d = Settings()
    p.add_argument("--requests-per-min", type=int, default=int(env("RATE_LIMIT_PER_MIN", d.requests_per_min)),
                   help="requests per client a minute, 0: no limit ($RATE_LIMIT_PER_MIN)")
    p.add_argument("--upload-mb-per-min", type=float, default=float(env("UPLOAD_MB_PER_MIN", d.upload_mb_per_min)),
                   help="MB of pictures per client a minute, 0: no limit ($UPLOAD_MB_PER_MIN)")
    p.add_argument("--trusted-hops", type=int, default=int(env("TRUSTED_HOPS", d.trusted_hops)),
                   help="proxies of yours in front of the app, each appending to X-Forwarded-For: a client is the "
                        "entry this far from the right; 0: the connection's address ($TRUSTED_HOPS; a Space: 1)")
    p.add_argument("--max-k", type=int, default=int(env("MAX_K", d.max_k)), help="results per page ($MAX_K)")
    p.add_argument("--max-batch", type=int, default=int(env("MAX_BATCH", d.max_batch)),
                   help="images per /search_batch ($MAX_BATCH)")
    p.add_argument("--max-sample", type=int, default=int(env("MAX_SAMPLE", d.max_sample)),
                   help="images sampled per /duplicates ($MAX_SAMPLE)")
    p.add_argument("--mcp", choices=["1", "0"], default=env("MCP", "1"),
                   help="1: also serve the endpoints as MCP tools for agents, at /gradio_api/mcp/ ($MCP)")
    p.add_argument("--auth-file", default=env("APP_AUTH_FILE", ""),
                   help="put the whole app behind a login: a file of `user:password` lines ($APP_AUTH_FILE)")
    args = p.parse_args(argv)
    on_space = bool(env("SPACE_ID"))
    settings = Settings(model_dir=args.model, collection=args.collection, qdrant=args.qdrant,
                        data_dir=args.data_dir, max_upload_mb=args.max_upload_mb,
                        url_allow_networks=args.url_allow_networks, url_timeout_s=args.url_timeout_s,
                        admin_token=env("ADMIN_TOKEN", ""),
                        public=on_space or args.host not in LOOPBACK_HOSTS,
                        read_only={"auto": None, "1": True, "0": False}[args.read_only],
                        oauth=args.oauth == "1" or (args.oauth == "auto" and on_space and bool(env("OAUTH_CLIENT_ID"))),
                        write_users=args.write_users, write_orgs=args.write_orgs,
                        trusted_hops=args.trusted_hops, requests_per_min=args.requests_per_min,
                        upload_mb_per_min=args.upload_mb_per_min,
                        max_k=args.max_k, max_batch=args.max_batch, max_sample=args.max_sample, mcp=args.mcp == "1")
    return settings, args


def main(argv: list[str] | None = None, after_start=None) -> int:
    """`after_start(service)`: run in a thread of its own once the service is up (app.collection: fine-tune, then
    answer with the new model)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings, args = parse_settings(argv)
    if args.torch_threads > 0:
        import torch

        torch.set_num_threads(args.torch_threads)
    try:
        service = SearchService(settings)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if os.environ.get("FORWARDED_ALLOW_IPS", "").strip() == "*" and not settings.trusted_hops:
        logging.getLogger("app").warning("FORWARDED_ALLOW_IPS=* with TRUSTED_HOPS=0: a client's own X-Forwarded-For "
                                          "names it; set TRUSTED_HOPS to the number of your proxies")
    if settings.public and not settings.admin_token and not settings.oauth and settings.read_only is not False:
        logging.getLogger("app").warning("served beyond loopback with no ADMIN_TOKEN: the collection is read-only")
    try:
        auth = read_auth_file(args.auth_file) if args.auth_file else None
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if after_start is not None:
        threading.Thread(target=after_start, args=(service,), name="after-start", daemon=True).start()
    launch(service, args.host, args.port or None, auth=auth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
