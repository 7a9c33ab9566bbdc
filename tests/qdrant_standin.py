"""A Qdrant REST server stand-in: the REST endpoints the store uses, answered by qdrant-client's own local mode.

No Qdrant server runs on this machine (no Docker engine, no binary), so the server code path of the store
(`ClientStore(url=…)`: REST requests, JSON models, the API key header, retries, errors) is exercised against
this: request bodies are parsed with qdrant-client's own REST models and handed to `QdrantClient(":memory:")`,
whose answers go back as the server's `{"result": …, "status": "ok", "time": …}` envelope. It can be stopped
and started again on the same port (an outage), and told to answer the next requests with 503 (a restarting
node), which is what the fault tests need. It does not pretend to be more: only these endpoints. Its collection
snapshots (create, download, delete, upload) hold the collection in a JSON format of its own, not Qdrant's: what
they test is the store's side of the exchange.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pydantic import TypeAdapter
from qdrant_client import QdrantClient
from qdrant_client.http import models as m

COLLECTION = r"/collections/(?P<c>[^/]+)"


def _dump(value):
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    return value


class QdrantStandIn:
    def __init__(self, api_key: str | None = None, port: int = 0):
        self.local = QdrantClient(location=":memory:")
        self.api_key = api_key
        self.lock = threading.Lock()
        self.requests: list[str] = []  # "METHOD path" of every API request (not the version check)
        self.fail_next = 0  # answer this many next requests with 503
        self.port = port
        self.server: ThreadingHTTPServer | None = None
        self.snapshots: dict[str, bytes] = {}
        self.bodies: dict[str, dict] = {}  # the last JSON body sent to each "METHOD path"
        self.queries: list[dict] = []  # every query of every /points/query/batch request, in order
        self.connections: set = set()  # open keep-alive connections, cut by stop()
        self.routes = [
            ("GET", COLLECTION + "/exists", lambda mt, b: {"exists": self.local.collection_exists(mt["c"])}),
            ("PUT", COLLECTION + "/index", self._create_index),
            ("POST", COLLECTION + "/points/count", self._count),
            ("POST", COLLECTION + "/points/delete", self._delete),
            ("POST", COLLECTION + "/points/scroll", self._scroll),
            ("POST", COLLECTION + "/points/query", self._query),
            ("POST", COLLECTION + "/points/query/batch", self._query_batch),
            ("POST", COLLECTION + "/facet", self._facet),
            ("POST", COLLECTION + "/points", self._retrieve),
            ("PUT", COLLECTION + "/points", self._upsert),
            ("GET", COLLECTION, lambda mt, b: self.local.get_collection(mt["c"])),
            ("PUT", COLLECTION, self._create),
            ("PATCH", COLLECTION, self._update),
            ("DELETE", COLLECTION, lambda mt, b: self.local.delete_collection(mt["c"])),
        ]

    # ---- endpoints: REST body → local-mode call ----
    def _create(self, mt, body):
        req = m.CreateCollection.model_validate(body)
        return self.local.create_collection(mt["c"], vectors_config=req.vectors, metadata=req.metadata)

    def _update(self, mt, body):
        req = m.UpdateCollection.model_validate(body)
        return self.local.update_collection(mt["c"], metadata=req.metadata)

    def _create_index(self, mt, body):
        req = m.CreateFieldIndex.model_validate(body)
        return self.local.create_payload_index(mt["c"], req.field_name, req.field_schema)

    def _count(self, mt, body):
        req = m.CountRequest.model_validate(body)
        return self.local.count(mt["c"], count_filter=req.filter, exact=bool(req.exact))

    def _delete(self, mt, body):
        selector = TypeAdapter(m.PointsSelector).validate_python(body)
        return self.local.delete(mt["c"], points_selector=selector)

    def _scroll(self, mt, body):
        req = m.ScrollRequest.model_validate(body)
        points, nxt = self.local.scroll(mt["c"], scroll_filter=req.filter, limit=req.limit or 10, offset=req.offset,
                                        with_payload=req.with_payload, with_vectors=req.with_vector or False)
        return {"points": _dump(points), "next_page_offset": nxt}

    def _query(self, mt, body):
        req = m.QueryRequest.model_validate(body)
        return self.local.query_points(
            mt["c"], query=req.query, using=req.using, prefetch=req.prefetch, query_filter=req.filter,
            search_params=req.params, limit=req.limit or 10, offset=req.offset,
            with_payload=req.with_payload if req.with_payload is not None else False,
            with_vectors=req.with_vector or False, score_threshold=req.score_threshold,
        )

    def _query_batch(self, mt, body):
        req = m.QueryRequestBatch.model_validate(body)
        return self.local.query_batch_points(mt["c"], requests=req.searches)

    def _facet(self, mt, body):
        req = m.FacetRequest.model_validate(body)
        return self.local.facet(mt["c"], req.key, facet_filter=req.filter, limit=req.limit or 10,
                                exact=bool(req.exact))

    def _retrieve(self, mt, body):
        req = m.PointRequest.model_validate(body)
        return self.local.retrieve(mt["c"], req.ids, with_payload=req.with_payload if req.with_payload is not None
                                   else True, with_vectors=req.with_vector or False)

    def _upsert(self, mt, body):
        req = TypeAdapter(m.PointInsertOperations).validate_python(body)
        return self.local.upsert(mt["c"], points=req.points)

    # ---- snapshots: the collection's config, metadata and points, as JSON ----
    def _snapshot(self, method: str, collection: str, name: str | None, headers, raw: bytes):
        if method == "POST" and name is None:
            info = self.local.get_collection(collection)
            points, _ = self.local.scroll(collection, limit=10**9, with_payload=True, with_vectors=True)
            data = json.dumps({"vectors": _dump(info.config.params.vectors), "metadata": info.config.metadata,
                               "points": _dump(points)}).encode()
            snap = f"{collection}-{len(self.snapshots)}.snapshot"
            self.snapshots[snap] = data
            return {"name": snap, "creation_time": None, "size": len(data)}
        if method == "GET":
            return self.snapshots[name]
        if method == "DELETE":
            return self.snapshots.pop(name) is not None
        if method == "POST" and name == "upload":
            boundary = headers.get("Content-Type").split("boundary=")[1].encode()
            part = next(p for p in raw.split(b"--" + boundary) if b'name="snapshot"' in p)
            snap = json.loads(part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0])
            if self.local.collection_exists(collection):
                self.local.delete_collection(collection)
            vectors = {k: m.VectorParams.model_validate(v) for k, v in snap["vectors"].items()}
            self.local.create_collection(collection, vectors_config=vectors, metadata=snap["metadata"])
            self.local.upsert(collection, points=[m.PointStruct(**p) for p in snap["points"]])
            return True
        raise KeyError("not found")

    # ---- HTTP ----
    def handle(self, method: str, path: str, headers, raw: bytes) -> tuple[int, dict | bytes]:
        path = path.split("?", 1)[0]
        if method == "GET" and path == "/":  # the client's version check, answered bare as the server does
            return 200, {"title": "qdrant - vector search engine (stand-in)", "version": "1.20.0"}
        self.requests.append(f"{method} {path}")
        if self.fail_next > 0:
            self.fail_next -= 1
            return 503, {"status": {"error": "Service Unavailable: the node is restarting"}, "time": 0}
        if self.api_key and headers.get("api-key") != self.api_key:
            return 401, {"status": {"error": "Must provide an API key or an Authorization bearer token"}, "time": 0}
        snap = re.fullmatch(COLLECTION + r"/snapshots(?:/(?P<name>[^/]+))?", path)
        if snap:
            try:
                with self.lock:
                    result = self._snapshot(method, snap["c"], snap["name"], headers, raw)
            except (KeyError, StopIteration, ValueError) as e:
                return 404, {"status": {"error": f"stand-in snapshot: {e}"}, "time": 0}
            return 200, result if isinstance(result, bytes) else {"result": result, "status": "ok", "time": 0}
        for verb, pattern, fn in self.routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                start = time.perf_counter()
                if raw:
                    self.bodies[f"{method} {path}"] = json.loads(raw)
                    if path.endswith("/points/query/batch"):
                        self.queries += self.bodies[f"{method} {path}"]["searches"]
                try:
                    with self.lock:
                        result = fn(match.groupdict(), json.loads(raw) if raw else None)
                except (ValueError, KeyError) as e:  # what the server answers for a bad request or no collection
                    status = 404 if "not found" in str(e).lower() else 400
                    return status, {"status": {"error": str(e)}, "time": 0}
                return 200, {"result": _dump(result), "status": "ok", "time": time.perf_counter() - start}
        return 404, {"status": {"error": f"stand-in: no route for {method} {path}"}, "time": 0}

    def start(self) -> QdrantStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                standin.connections.add(self.connection)

            def finish(self):
                standin.connections.discard(self.connection)
                super().finish()

            def _serve(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, payload = standin.handle(self.command, self.path, self.headers, raw)
                binary = isinstance(payload, bytes)
                data = payload if binary else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream" if binary else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _serve

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """An outage: the port refuses connections; what is stored stays (start() brings it back)."""
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        for conn in list(self.connections):  # the clients' keep-alive connections die with the server
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
