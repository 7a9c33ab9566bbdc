"""Tools for agents: the app's endpoints through Gradio's MCP server (/gradio_api/mcp/), listed and called by the
`mcp` package's own client, as an agent's MCP client calls them."""

import asyncio
import json
import random

from tests.conftest import draw_shape

WANTED = {"search", "search_url", "search_by_id", "search_examples", "overview", "collection_map"}


def _session(url: str, work, headers: dict | None = None):
    """Run `work(session)` in an MCP client session with the app's MCP server (sending `headers` with each
    request)."""
    import httpx
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def run():
        async with httpx.AsyncClient(headers=headers, timeout=60) as http, \
                streamable_http_client(url.rstrip("/") + "/gradio_api/mcp/", http_client=http) as (read, write, _), \
                ClientSession(read, write) as session:
            await session.initialize()
            return await work(session)

    return asyncio.run(run())


def test_the_tools_are_listed_with_typed_parameters_and_descriptions(served):
    client, _, _ = served

    async def work(session):
        return (await session.list_tools()).tools

    tools = {t.name: t for t in _session(client.src, work)}
    assert WANTED <= set(tools), sorted(tools)
    examples = tools["search_examples"]
    props = examples.inputSchema["properties"]
    assert {"positive_ids", "negative_ids", "metric", "k", "strategy", "offset"} <= set(props)
    assert props["k"]["type"] in ("number", "integer") and "enum" in json.dumps(props["strategy"])
    assert "more like these" in examples.description.lower()
    assert "stored image's id" in tools["search_by_id"].inputSchema["properties"]["point_id"]["description"]


def test_an_agent_searches_by_id_and_by_examples_and_reads_the_overview(served):
    client, _, _ = served
    _, results, *_ = client.predict(_square(), "cosine", 3, api_name="/search")

    async def work(session):
        by_id = await session.call_tool("search_by_id", {"point_id": results[0]["id"], "k": 4})
        examples = await session.call_tool("search_examples", {"positive_ids": results[0]["id"], "k": 4})
        overview = await session.call_tool("overview", {})
        return by_id, examples, overview

    by_id, examples, overview = _session(client.src, work)
    assert not by_id.isError and not examples.isError
    text = " ".join(c.text for c in by_id.content if c.type == "text")
    assert results[0]["id"] in text and "square" in text
    assert "square" in " ".join(c.text for c in examples.content if c.type == "text")
    assert "'images': 120" in overview.content[0].text or '"images": 120' in overview.content[0].text


def test_an_agent_searches_with_a_picture_it_sends_inline(served):
    import base64
    import io

    client, _, _ = served
    png = io.BytesIO()
    draw_shape("triangle", random.Random(12)).save(png, format="PNG")
    picture = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()

    async def work(session):
        return await session.call_tool("search", {"image": picture, "k": 5})

    answer = _session(client.src, work)
    text = " ".join(c.text for c in answer.content if c.type == "text")
    assert not answer.isError and text.count("'label': 'triangle'") >= 4, text[:500]


def test_an_agents_wrong_call_is_an_error_that_says_what_to_do(served):
    client, _, _ = served

    async def work(session):
        return await session.call_tool("search_by_id", {"point_id": "not-an-id"})

    answer = _session(client.src, work)
    assert answer.isError and "not an image id" in " ".join(c.text for c in answer.content if c.type == "text")


def _square():
    import tempfile

    from gradio_client import handle_file

    path = tempfile.NamedTemporaryFile(suffix=".png", delete=False).name
    draw_shape("square", random.Random(8)).save(path)
    return handle_file(path)


def test_an_agents_writes_need_the_same_credential_as_the_page(indexed, tiny_model, tmp_path):
    """With ADMIN_TOKEN set, the MCP tool `delete` is refused without it, and deletes with it (the client's
    header)."""
    from tests.conftest import own_collection, running_app

    qdrant, name = own_collection(indexed, tmp_path / "q")
    with running_app(tiny_model, qdrant, name, tmp_path / "data", admin_token="mcp-token-1") as (url, service):
        store = service.require_store()
        before = store.count()
        victim = store.scroll(limit=1)[0][0].id

        async def delete(session):
            return await session.call_tool("delete", {"ids": victim})

        refused = _session(url, delete)
        assert refused.isError and "no credential was sent" in refused.content[0].text
        assert store.count() == before
        deleted = _session(url, delete, headers={"Authorization": "Bearer mcp-token-1"})
        assert not deleted.isError and "'deleted': 1" in deleted.content[0].text and store.count() == before - 1
