"""A search plan's request (indexer.plans.Nearest) in qdrant-client's vocabulary (a server, or local mode)."""

from __future__ import annotations

from indexer.plans import Filters, Nearest


def filter_of(filters: Filters | None):
    """The plan's filters as a qdrant-client Filter (None: no filter)."""
    from qdrant_client import models

    if filters is None:
        return None
    match = [("label", models.MatchAny(any=list(filters.labels)) if filters.labels else None),
             ("source.split", models.MatchValue(value=filters.split) if filters.split else None),
             ("code", models.MatchAny(any=list(filters.codes)) if filters.codes else None)]
    must = [models.FieldCondition(key=key, match=m) for key, m in match if m is not None]
    must += [models.HasIdCondition(has_id=list(filters.only))] if filters.only else []
    must_not = [models.HasIdCondition(has_id=list(filters.exclude))] if filters.exclude else []
    return models.Filter(must=must or None, must_not=must_not or None) if must or must_not else None


def params_of(request: Nearest, remote: bool):
    """How exactly to score: a server's quantized vectors rescored, the codes exactly, a tie by the originals."""
    from qdrant_client import models

    if request.using == "code":  # the quantized ±1 codes score exactly: no rescoring
        quant = models.QuantizationSearchParams(rescore=False) if remote else None
    elif request.originals or request.exact:  # a tie, or an exact search: by the original vectors
        quant = models.QuantizationSearchParams(ignore=True) if remote else None
    else:
        quant = models.QuantizationSearchParams(rescore=True, oversampling=2.0) if remote else None
    return models.SearchParams(exact=request.exact or None, quantization=quant)


def request_of(r: Nearest, remote: bool):
    """The whole request, its prefetch included."""
    from qdrant_client import models

    prefetch = None
    if r.prefetch is not None:
        pf = r.prefetch
        prefetch = [models.Prefetch(query=list(pf.vector), using=pf.using, limit=pf.limit,
                                    filter=filter_of(pf.filters), params=params_of(pf, remote),
                                    score_threshold=pf.threshold)]
    query = list(r.vector)
    if r.examples is not None:
        query = models.RecommendQuery(recommend=models.RecommendInput(
            positive=[list(v) for v in r.examples.positives], negative=[list(v) for v in r.examples.negatives],
            strategy=models.RecommendStrategy.BEST_SCORE))
    return models.QueryRequest(
        query=query, using=r.using, prefetch=prefetch, filter=filter_of(r.filters), limit=r.limit,
        offset=r.offset, score_threshold=r.threshold, params=params_of(r, remote), with_payload=r.payload,
        with_vector=False,
    )
