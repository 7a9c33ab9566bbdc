"""The page's sentence about a query: what was done to the picture, or that it is unlike the collection."""

from __future__ import annotations

from indexer.calibration import UNLIKE_PERCENTILE


def query_note(query: dict) -> str:
    """One plain sentence for the page: a warning when the picture is unlike the collection, else how the picture
    was prepared."""
    prep = query.get("prepared") or {}
    if query.get("like"):
        like = query["like"]
        return (f"More like the stored image `{like['id']}` ({like['label'] or 'no label'}): searched with its stored "
                "vectors, and left out of its own results.")
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
        return "No object stood out from the background; the whole picture was searched."
    done = ["object found" + (" on a textured or unevenly lit surface" if prep.get("surface") else "")
            + " and framed like the collection's images"]
    if prep.get("inverted"):
        done.append("light and dark swapped to match the collection")
    if prep.get("grey"):
        done.append("converted to grey")
    if prep.get("stretched"):
        done.append(f"its contrast stretched {prep['stretched']}×")
    return "Prepared: " + ", ".join(done) + f" (profile: the {prep['profile']}'s)."
