"""A stand-in for the Hugging Face Hub's upload API (the Hub is unreachable here): create a repo, ask how each file
is to be uploaded (every file "regular": its bytes in the commit itself, no LFS or Xet storage), check the card's
front matter, and commit.
It keeps the committed files, so a test can read back what `python -m training push` sent."""

import base64
import json
from http.server import BaseHTTPRequestHandler

from tests.hub_standin import LoopbackServer


class HubUploadStandIn(LoopbackServer):
    def __init__(self, token: str):
        self.token, self.repos, self.files, self.requests = token, {}, {}, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status: int, body: dict | None = None):
                data = json.dumps(body or {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                outer.requests.append(f"POST {self.path}")
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Authorization") != f"Bearer {outer.token}":
                    return self._answer(401, {"error": "Invalid credentials in Authorization header"})
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[:3] == ["api", "repos", "create"]:
                    body = json.loads(raw)
                    repo = f"{body.get('organization') or 'alice'}/{body['name']}"
                    outer.repos[repo] = {"visibility": body.get("visibility") or
                                         ("private" if body.get("private") else "public")}
                    return self._answer(200, {"url": f"{outer.url}/{repo}", "name": repo})
                if parts[:2] == ["api", "validate-yaml"]:  # the card's front matter, checked before a commit
                    return self._answer(200, {"errors": [], "warnings": []})
                if parts[:2] == ["api", "models"] and "preupload" in parts:
                    files = json.loads(raw)["files"]
                    return self._answer(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                         "shouldIgnore": False} for f in files]})
                if parts[:2] == ["api", "models"] and "commit" in parts:
                    repo = "/".join(parts[2:4])
                    for line in raw.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            v = item["value"]
                            outer.files[(repo, v["path"])] = base64.b64decode(v["content"])
                    return self._answer(200, {"commitUrl": f"{outer.url}/{repo}/commit/0123abcd",
                                              "commitOid": "0123abcd" * 5, "pullRequestUrl": None})
                return self._answer(404, {"error": f"the stand-in does not answer {self.path}"})

            def do_GET(self):
                outer.requests.append(f"GET {self.path}")
                return self._answer(404, {"error": f"the stand-in does not answer {self.path}"})

        self.serve(Handler)
