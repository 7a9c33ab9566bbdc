"""The same thing drawn in another style: a collection of icons of one desktop icon theme, queried with the icons of
the same names drawn by other themes (real pictures nobody here made, none of them pretrained on:
training.corpora.PRETRAIN_THEMES are other themes).

The collection is one theme's icons (default: GNOME's, Tango-style), 64 px, transparent, one sub-folder per icon
context (actions, apps, devices, mimetypes, places, status, …) as a person's folder (data/styles-folder/<theme>/).
The queries are the icons of the same names in other themes (default: LXDE's nuoveXT2 and KDE's Oxygen), on white.
Per query theme, method and metric: the icon of the same name in the top 5, and context precision@10 (the icon of
the same name left out), ranked by the product's rules; methods as bench/clipart.py's (the backbone as it is, the
folder fine-tuned from it) beside raw-pixel cosine, in the same run. Missing themes are installed with apt-get.

python bench/styles.py [--collection gnome] [--queries nuoveXT2,oxygen] [--backbone models/backbone] [--methods …]
    [--name styles]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.clipart import folder_of, make_methods, on, record, training_settings  # noqa: E402
from bench.common import Recorder, apt_install  # noqa: E402
from training.corpora import ICONS, MIN_ICON_SIDE, icon_size, rgba  # noqa: E402

PACKAGES = {"gnome": "gnome-icon-theme", "nuoveXT2": "lxde-icon-theme", "oxygen": "oxygen-icon-theme",
            "Tango": "tango-icon-theme", "mate": "mate-icon-theme"}
CONTEXTS = ("actions", "apps", "categories", "devices", "emblems", "emotes", "mimetypes", "places", "status")
SIZE = 64


def install(themes: list[str]) -> None:
    """apt-get install the Debian packages of the themes this machine lacks."""
    missing = [PACKAGES[t] for t in themes if not (ICONS / t).is_dir()]
    if missing:
        apt_install(missing)


def icons(theme: str) -> dict[str, tuple[str, Path]]:
    """name → (context, file): the largest PNG rendering (≥ MIN_ICON_SIDE px) of every icon of a theme filed under
    a context, the file resolved (an alias names the same file as the icon it stands for)."""
    best: dict[str, tuple[int, str, Path]] = {}
    for f in sorted((ICONS / theme).rglob("*.png")):
        context = next((p for p in f.parts if p in CONTEXTS), None)
        size = icon_size(f)
        if context and f.exists() and size >= MIN_ICON_SIDE and size > best.get(f.stem, (0,))[0]:
            best[f.stem] = (size, context, f.resolve())
    return {name: (context, f) for name, (_, context, f) in sorted(best.items())}


def unique(theme: dict[str, tuple[str, Path]]) -> tuple[list[Path], list[str], dict[str, int]]:
    """(the distinct files, the context of each, name → its file's row): every picture once, under every name."""
    files: dict[Path, int] = {}
    contexts, row = [], {}
    for name, (context, f) in theme.items():
        if f not in files:
            files[f] = len(files)
            contexts.append(context)
        row[name] = files[f]
    return list(files), contexts, row


def pictures_of(files: list[Path]) -> np.ndarray:
    out = []
    for f in files:
        with Image.open(f) as image:
            out.append(rgba(image, SIZE))
    return np.stack(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--collection", default="gnome", choices=sorted(PACKAGES), help="the theme searched")
    p.add_argument("--queries", default="nuoveXT2,oxygen", help="the themes queried with, comma-separated")
    p.add_argument("--backbone", default="models/backbone", help="the pretrained backbone's dir")
    p.add_argument("--methods", default="backbone,fine-tuned")
    p.add_argument("--epochs", type=float, default=None, help="epochs of the fine-tuning (default: the product's)")
    p.add_argument("--body-lr-scale", type=float, default=None,
                   help="the fine-tuning's --body_lr_scale (default: the product's)")
    p.add_argument("--name", default="styles", help="the results' name (bench/results/NAME.json)")
    args = p.parse_args()
    started = time.perf_counter()
    query_themes = args.queries.split(",")
    install([args.collection, *query_themes])
    files, contexts, index = unique(icons(args.collection))
    cats = np.array(contexts)
    pictures = pictures_of(files)
    data = Path(__file__).resolve().parent.parent / "data"
    folder = folder_of(pictures, cats, data / "styles-folder" / args.collection)
    rec = Recorder(args.name)
    methods = make_methods(rec, args.methods.split(","), folder, args.backbone, training_settings(args),
                           data / "styles-models" / args.collection)
    db = {name: f([on(x) for x in pictures]) for name, f in methods.items()}
    for theme in query_themes:
        other = {n: f for n, (_, f) in icons(theme).items() if n in index}
        query_files = {f: index[n] for n, f in other.items()}  # a picture once, its first name's original
        queries = [on(x) for x in pictures_of(list(query_files))]
        record(rec, theme, {name: f(queries) for name, f in methods.items()}, db,
               np.array(list(query_files.values())), cats, ("same_icon_in_top5", "context_p_at_10"),
               collection=args.collection)
    rec.figure("seconds", time.perf_counter() - started, "s", better="lower")


if __name__ == "__main__":
    main()
