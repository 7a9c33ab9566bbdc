"""`python -m training push DIR REPO`: a model dir to the Hugging Face Hub, with its card, through huggingface_hub.

What is pushed is what a model dir is (training.modeldir.MODEL_FILES): weights (safetensors), config, image
processor, metrics and the card; never the Trainer's checkpoints. The token comes from $HF_TOKEN (or the login
huggingface_hub keeps), never a flag.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from training.modeldir import check_model_dir, model_files


def push(model_dir: str | Path, repo_id: str, private: bool = False, token: str | None = None,
         endpoint: str | None = None, message: str | None = None) -> str:
    """Create `repo_id` (if it is not there yet) and commit the model dir's files to it; returns the commit's URL."""
    from huggingface_hub import HfApi

    path = check_model_dir(model_dir)
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    # the model's files by name (patterns would also match inside checkpoints/)
    commit = api.upload_folder(repo_id=repo_id, folder_path=str(path), allow_patterns=model_files(path),
                               commit_message=message or f"Upload {path.name} (python -m training push)")
    return commit.commit_url


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m training push", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", help="a model dir written by `python -m training`")
    p.add_argument("repo_id", help="the Hub repo to push to, e.g. you/fmnist-small")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--message", default=None, help="the commit message")
    args = p.parse_args(argv)
    try:
        print(push(args.model_dir, args.repo_id, args.private, message=args.message))
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", flush=True)
        return 2
    except Exception as e:  # offline, a wrong token, no such organisation: huggingface_hub says which
        print(f"error: the push failed ({type(e).__name__}: {e}); check HF_TOKEN and that the Hub is reachable "
              "(HF_HUB_OFFLINE unset)", flush=True)
        return 2
    return 0
