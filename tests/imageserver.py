"""An HTTP server on loopback that serves a query picture, and the ways a URL can go wrong."""

import io
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from app.fetch import parse_networks
from tests.conftest import draw_shape

LOOPBACK = parse_networks("127.0.0.1/32")  # what a test allows, as an operator would allow their own network


def _png() -> bytes:
    buf = io.BytesIO()
    draw_shape("square", random.Random(42)).save(buf, format="PNG")
    return buf.getvalue()


class ImageServer:
    """Routes: /square.png, /text.png (not an image), /big (declares 50 MB), /endless (chunked, no length),
    /slow (headers, then silence), /redirect, /redirect-private (to 127.0.0.2),
    /redirect-name (to internal.example), /loop, /missing."""

    def __init__(self):
        png = _png()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body=b"", headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if "Content-Length" not in (headers or {}) and "Transfer-Encoding" not in (headers or {}):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def do_GET(self):
                outer.hosts.append(self.headers.get("Host"))
                port = self.server.server_address[1]
                if self.path == "/square.png":
                    self._send(200, png, {"Content-Type": "image/png"})
                elif self.path == "/text.png":
                    self._send(200, b"<html>not a picture</html>" * 10, {"Content-Type": "image/png"})
                elif self.path == "/big":
                    self._send(200, b"x" * 1024, {"Content-Length": str(50 * 1024 * 1024)})
                elif self.path == "/endless":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    chunk = b"x" * 65536
                    try:
                        for _ in range(400):  # 25 MB, no Content-Length
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.write(b"0\r\n\r\n")
                    except OSError:
                        pass  # the client hung up, as it should
                elif self.path == "/slow":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(png)))
                    self.end_headers()
                    time.sleep(4)
                elif self.path == "/redirect":
                    self._send(302, headers={"Location": "/square.png"})
                elif self.path == "/redirect-private":
                    self._send(302, headers={"Location": f"http://127.0.0.2:{port}/square.png"})
                elif self.path == "/redirect-name":  # to a name the tests' resolver stub makes private
                    self._send(302, headers={"Location": f"http://internal.example:{port}/square.png"})
                elif self.path == "/loop":
                    self._send(302, headers={"Location": "/loop"})
                else:
                    self._send(404)

        self.hosts: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.png = png
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
