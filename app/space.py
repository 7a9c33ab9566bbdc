"""Entry point for a Hugging Face Space (`app_file` in the README's front matter).

A Space runs `python app/space.py` from the repository root, so the repository is put on the path first.
Configure it with Space variables and secrets: MODEL_DIR (a model dir in the repo, or a Hub model id),
DATA_DIR (`/data` with persistent storage), QDRANT_URL and QDRANT_API_KEY for a Qdrant Cloud cluster.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("GRADIO_SERVER_NAME", "0.0.0.0")
if Path("/data").is_dir() and os.access("/data", os.W_OK):
    os.environ.setdefault("DATA_DIR", "/data")

from app.__main__ import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
