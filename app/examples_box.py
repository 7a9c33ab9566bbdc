"""The Search tab's "More like these, less like those" box: its controls, what a click on a result marks, and the
examples a search by them keeps (for paging and Back)."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from indexer.ranking import STRATEGIES

CLICK_SEARCHES = "searches for more like it"
CLICK_MORE, CLICK_LESS = "marks it: more like this", "marks it: less like this"


def id_list(text) -> list[str]:
    """Ids typed or collected in a box: separated by commas, spaces or lines; each once, in order."""
    return list(dict.fromkeys(t for t in str(text or "").replace(",", " ").split() if t))


def mark(chosen: str, click: str, positive_ids, negative_ids) -> tuple[str, str]:
    """The boxes of ids after a click that marks `chosen` more (CLICK_MORE) or less (CLICK_LESS) like what is
    wanted: it joins that box, and leaves the other."""
    more = [i for i in id_list(positive_ids) if i != chosen] + ([chosen] if click == CLICK_MORE else [])
    less = [i for i in id_list(negative_ids) if i != chosen] + ([chosen] if click == CLICK_LESS else [])
    return ", ".join(more), ", ".join(less)


def examples_asked(positive_ids, negative_ids, positive_pictures, negative_pictures, strategy) -> dict:
    """The examples of a search, as the page keeps them while its results answer them (paging, Back)."""
    return {"positive_ids": positive_ids, "negative_ids": negative_ids, "strategy": strategy,
            "positive_pictures": list(positive_pictures or []), "negative_pictures": list(negative_pictures or [])}


def examples_box() -> SimpleNamespace:
    """The controls of a search by several examples (inside the query column)."""
    with gr.Accordion("More like these, less like those", open=False, elem_id="examples-box"):
        c = SimpleNamespace(click=gr.Radio([CLICK_SEARCHES, CLICK_MORE, CLICK_LESS], value=CLICK_SEARCHES,
                                           label="A click on a result", elem_id="click-mode"))
        c.positive_ids = gr.Textbox(label="More like these (ids)", elem_id="positive-ids",
                                    placeholder="mark results, or paste their ids")
        c.negative_ids = gr.Textbox(label="Less like these (ids)", elem_id="negative-ids")
        with gr.Row():
            c.positive_pictures = gr.File(file_count="multiple", file_types=["image"], label="…or pictures like "
                                          "what you want", height=120, min_width=120)
            c.negative_pictures = gr.File(file_count="multiple", file_types=["image"], label="…and pictures of "
                                          "what you don't", height=120, min_width=120)
        c.strategy = gr.Radio(list(STRATEGIES), value=STRATEGIES[0], label="How the examples combine",
                              info="**average_vector**: one query, 2 × the positives' mean − the negatives' (any "
                              "metric) · **best_score**: each result by its most similar example, below every such "
                              "one if a negative is nearer (cosine)")
        c.go = gr.Button("Search with these examples", elem_id="search-examples")
    return c
