"""Near-duplicates in a collection: pairs above a cosine threshold among a sample, joined into groups."""

from __future__ import annotations

from indexer.store import Store


def duplicate_groups(store: Store, threshold: float, sample: int) -> list[list[dict]]:
    """Groups of near-duplicates among `sample` stored images (pairs with cosine ≥ `threshold`, connected), the
    largest first; each member with its label, source and best score."""
    pairs = store.duplicate_pairs(float(threshold), sample=int(sample))
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    best: dict[str, float] = {}
    for a, b, score in pairs:
        parent[root(a)] = root(b)
        best[a], best[b] = max(best.get(a, 0), score), max(best.get(b, 0), score)
    groups: dict[str, list[str]] = {}
    for x in parent:
        groups.setdefault(root(x), []).append(x)
    records = {h.id: h for h in store.retrieve(list(parent))}
    out = [
        [{"id": i, "label": records[i].payload.get("label"), "source": records[i].payload.get("source"),
          "sha256": records[i].payload.get("sha256"), "best_score": round(best[i], 4)}
         for i in sorted(ids) if i in records]
        for ids in groups.values()
    ]
    return sorted((g for g in out if len(g) > 1), key=len, reverse=True)
