"""A search plan's request (indexer.plans.Nearest) in the embedded engine's own vocabulary (qdrant_edge)."""

from __future__ import annotations

from indexer.plans import Filters, Nearest

# `--quantized`: float vectors binary-quantized in RAM, scanned, and the best `oversampling × k` rescored with
# the originals; bench/search.py measures the recall this oversampling gives.
QUANTIZED_OVERSAMPLING = 128


def filter_of(filters: Filters | None):
    """The plan's filters as a qdrant_edge Filter (None: no filter)."""
    from qdrant_edge import FieldCondition, Filter, HasIdCondition, MatchAny, MatchValue

    if filters is None:
        return None
    must = [FieldCondition(key="label", match=MatchAny(any=list(filters.labels)))] if filters.labels else []
    must += [FieldCondition(key="source.split", match=MatchValue(filters.split))] if filters.split else []
    must += [FieldCondition(key="code", match=MatchAny(any=list(filters.codes)))] if filters.codes else []
    must += [HasIdCondition(set(filters.only))] if filters.only else []
    must_not = [HasIdCondition(set(filters.exclude))] if filters.exclude else []
    return Filter(must=must, must_not=must_not) if must or must_not else None


def params_of(request: Nearest, quantized: bool):
    """How exactly to score: the codes exactly; the floats of a quantized collection rescored, or the originals."""
    from qdrant_edge import QuantizationSearchParams, SearchParams

    if request.using == "code":  # the quantized ±1 codes score exactly: no rescoring
        return SearchParams(quantization=QuantizationSearchParams(rescore=False))
    if quantized:  # exact or originals: the original vectors only; else the quantized scan, rescored
        quant = (QuantizationSearchParams(ignore=True) if request.exact or request.originals else
                 QuantizationSearchParams(rescore=True, oversampling=QUANTIZED_OVERSAMPLING))
        return SearchParams(exact=request.exact, quantization=quant)
    return SearchParams(exact=True) if request.exact else None


def request_of(r: Nearest, quantized: bool):
    """The whole request, its prefetch included."""
    from qdrant_edge import Prefetch, Query, QueryRequest, RecommendQuery

    flt = filter_of(r.filters)
    prefetches = None
    if r.prefetch is not None:
        pf = r.prefetch
        prefetches = [Prefetch(limit=pf.limit, query=Query.Nearest(list(pf.vector), using=pf.using),
                               filter=filter_of(pf.filters), params=params_of(pf, quantized),
                               score_threshold=pf.threshold)]
    if r.examples is not None:
        query = Query.RecommendBestScore(RecommendQuery([list(v) for v in r.examples.positives],
                                                        [list(v) for v in r.examples.negatives]), using=r.using)
    else:
        query = Query.Nearest(list(r.vector), using=r.using)
    return QueryRequest(
        limit=r.limit, offset=r.offset, query=query,
        prefetches=prefetches, filter=flt, score_threshold=r.threshold, params=params_of(r, quantized),
        with_payload=r.payload, with_vector=False,
    )
