"""The page's sentences: the collection's status line, and what was done to a query's picture, or that it is unlike
the collection."""

from __future__ import annotations

from indexer.calibration import UNLIKE_PERCENTILE
from training.shading import LIGHTEST


def query_note(query: dict) -> str:
    """One plain sentence for the page: a warning when the picture is unlike the collection, else how the picture
    was prepared."""
    prep = query.get("prepared") or {}
    if query.get("like"):
        like = query["like"]
        return (f"More like the stored image `{like['id']}` ({like['label'] or 'no label'}): searched with its stored "
                "vectors, and left out of its own results.")
    if query.get("examples"):
        ex = query["examples"]
        def names(group):
            return ", ".join((e.get("label") or "no label") if "id" in e else "a picture" for e in group) or "none"
        rule = ("the average of the examples (2 × the positives' mean − the negatives')"
                if query["strategy"] == "average_vector" else "each result's best example (best_score)")
        return (f"More like {len(ex['positive'])} example(s) ({names(ex['positive'])}), less like "
                f"{len(ex['negative'])} ({names(ex['negative'])}), by {rule}; the stored examples are left out.")
    if query.get("unlike"):
        return (f"⚠️ This picture is unlike the collection's images: its nearest stored image scores "
                f"{query['nearest_cosine']:.3f}, lower than {100 - UNLIKE_PERCENTILE} % of the collection's own images "
                "score against their "
                f"nearest ({query['calibrated_floor']:.3f}). These are the closest images there are, not matches.")
    if not prep.get("prepared"):
        why = {"off": "preparation is off: PREPARE=0, or the collection was indexed that way",
               "none": "neither the collection nor the model has an image profile"}.get(prep.get("profile"), "")
        return f"The picture was searched as it is ({why})." if why else "The picture was searched as it is."
    if prep.get("object") is None:
        moved = ", its background replaced by the collection's" if prep.get("matted") else ""
        return f"No object stood out from the background; the whole picture was searched{moved}."
    done = ["object found" + (" on a textured or unevenly lit surface" if prep.get("surface") else "")
            + " and framed like the collection's images"]
    if prep.get("smoothed"):
        done.append("its noise smoothed away")
    if prep.get("matted"):
        done.append("moved in its own colours onto the collection's background")
    if prep.get("inverted"):
        done.append("light and dark swapped to match the collection")
    if prep.get("grey"):
        done.append("converted to grey")
    if prep.get("shaded"):
        done.append("shaded as the collection's objects are")
    if prep.get("shading") == LIGHTEST:
        done.append("its light and dark taken the other way round (nearer stored images so)")
    if prep.get("stretched"):
        done.append(f"its contrast stretched {prep['stretched']}×")
    if prep.get("surface_encoder"):
        done.append("embedded by the model's encoder for photos on surfaces")
    return "Prepared: " + ", ".join(done) + f" (profile: the {prep['profile']}'s)."


def status_line(count: int, collection: str, model: str, meta: dict, background: str | None, lost: int) -> str:
    """The collection, the model that answers, work under way, and what a person should know: stored images that
    lost their files, a model that groups the collection's labels worse than raw pixels (indexer.floor)."""
    parts = [f"{count:,} images in `{collection}`, model `{model}`"]
    if background:
        parts.append(background)
    if lost:
        parts.append(f"⚠️ {lost} stored images have lost their files (the log names them)")
    floor = meta.get("floor") or {}
    if floor and floor["model_p_at_10"] < floor["pixels_p_at_10"]:
        parts.append(f"⚠️ on this collection raw pixels group the labels better than this model (label precision@10 "
                     f"{floor['pixels_p_at_10']:.2f} against {floor['model_p_at_10']:.2f} on {floor['sample']} of its "
                     "pictures): its answers are less alike than a plain comparison of colours would give")
    return " · ".join(parts)
