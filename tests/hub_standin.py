"""A stand-in for the Hugging Face Hub's whoami (the Hub is unreachable here), for Gradio's mocked sign-in."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    """An HTTP server on a free loopback port, serving `handler` in a thread until `stop`: what the stand-ins share."""

    def serve(self, handler) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class HubStandIn(LoopbackServer):
    """A stand-in for the Hugging Face Hub's /api/whoami-v2 (the Hub is unreachable here): Gradio's mocked login
    signs in as the user it names."""

    def __init__(self, user: str):
        body = json.dumps({"type": "user", "name": user, "fullname": user.title(), "avatarUrl": "",
                           "orgs": [{"name": "image-team"}]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                ok = self.path.startswith("/api/whoami")
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body) if ok else 0))
                self.end_headers()
                if ok:
                    self.wfile.write(body)

        self.serve(Handler)
