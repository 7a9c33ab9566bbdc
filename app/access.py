"""Who may change the collection, and how much of the server one client may take.

Writes (`/add`, `/delete`) are open only on a private deployment: the app listening on loopback, outside a
Space, with no admin token set. Anywhere else the collection is read-only unless the caller shows a credential:
- the admin token (ADMIN_TOKEN: a Space secret or `.env`), sent as `Authorization: Bearer <token>` (or typed in
  the page's Admin token box), compared in constant time, never logged or echoed;
- on a Space with "Sign in with Hugging Face" (OAuth): the Space's owner, a user named in WRITE_USERS, or a member
  of an organisation named in WRITE_ORGS.
Every write, and every refused one, leaves one audit line in the log (logger `app.audit`): who, from where, what,
how many, when; never a secret.

Fair use: each client may make `requests_per_min` requests and send `upload_mb_per_min` MB of pictures a minute;
above that it is refused with the seconds to wait, while other clients are served. A client is an address
(`client_address`): with no proxy in front (TRUSTED_HOPS=0), the connection's; behind `n` proxies of your own, each
appending the address it was reached from to X-Forwarded-For, the n-th entry from the right: the one your outermost
proxy wrote. The entries left of it are the client's own writing and are never believed (a client that sends
`X-Forwarded-For: <anything>` does not become someone else). app/space.py sets 1 hop on a Space.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass

audit_log = logging.getLogger("app.audit")


class Refused(Exception):
    """A request this client may not make (now); the message says what would allow it."""


@dataclass
class Caller:
    client: str  # the address the request came from
    user: str | None  # a signed-in Hugging Face user
    orgs: tuple[str, ...]  # that user's organisations, when WRITE_ORGS asks for them
    token: str  # the admin token it sent, if any (never logged)


def split_names(text: str | None) -> set[str]:
    return {n.strip().lstrip("@").lower() for n in (text or "").replace(";", ",").split(",") if n.strip()}


def client_address(peer: str, forwarded_for: list[str] | str | None, trusted_hops: int) -> str:
    """Who a request is from, for the per-client allowance and the audit line.

    `peer`: the connection's address; `forwarded_for`: the X-Forwarded-For header(s), in order; `trusted_hops`:
    how many proxies of the operator's stand in front of the app. Each proxy appends the address it was reached
    from, so the n-th entry from the right is what the outermost trusted proxy saw; a request with fewer entries
    did not come through them all, and is its peer."""
    if trusted_hops <= 0:
        return peer
    if isinstance(forwarded_for, str):
        forwarded_for = [forwarded_for]
    entries = [e.strip() for header in forwarded_for or [] for e in header.split(",") if e.strip()]
    if len(entries) < trusted_hops:
        return peer
    return entries[-trusted_hops]


class Access:
    def __init__(self, admin_token: str = "", public: bool = False, read_only: bool | None = None,
                 oauth: bool = False, write_users: str = "", write_orgs: str = ""):
        self._token = admin_token or ""
        self.public, self.oauth = public, oauth
        # READ_ONLY=1 always, =0 never (an operator's choice), unset: whenever the app is public or has credentials
        self.locked = read_only if read_only is not None else bool(public or self._token or oauth)
        self.write_users, self.write_orgs = split_names(write_users), split_names(write_orgs)

    @property
    def token_set(self) -> bool:
        return bool(self._token)

    def describe(self, user: str | None = None) -> str:
        """One sentence for the write tab: who may write here."""
        if not self.locked:
            return "Writes are open: this app serves this machine only (loopback) and has no admin token set."
        ways = []
        if self._token:
            ways.append("the admin token")
        if self.oauth:
            ways.append("signing in with Hugging Face as a writer (the Space's owner, WRITE_USERS, WRITE_ORGS)")
        how = " or ".join(ways) if ways else "nothing: no ADMIN_TOKEN is set (the operator can set one)"
        who = f"Signed in as @{user}. " if user else ""
        return f"{who}🔒 The collection is read-only; adding and deleting need {how}."

    def writer(self, caller: Caller, action: str) -> str:
        """Who is writing (for the audit line), or Refused saying what credential is needed."""
        if self._token and caller.token and hmac.compare_digest(caller.token.encode(), self._token.encode()):
            return "admin-token"
        if caller.user and (caller.user.lower() in self.write_users or self.write_orgs & set(caller.orgs)):
            return f"hf:{caller.user}"
        if not self.locked:
            return "local"
        if caller.token and self._token:
            reason = "the admin token sent is not the right one"
        elif caller.user:
            reason = f"@{caller.user} may not change this collection"
        else:
            reason = "no credential was sent"
        ways = []
        if self._token:
            ways.append("send the admin token as an `Authorization: Bearer …` header (gradio_client: "
                        "`Client(url, headers={'Authorization': 'Bearer …'})`) or type it in the Admin token box")
        if self.oauth:
            ways.append("sign in with Hugging Face as the Space's owner or a listed writer")
        if not ways:
            ways.append("the operator can set ADMIN_TOKEN (a Space secret or .env) to allow writes with it")
        self.audit(caller, action, 0, who="refused", note=reason)
        raise Refused(f"{action} refused: the collection is read-only here and {reason}; to change it, "
                      + "; or ".join(ways) + ". Nothing was stored.")

    @staticmethod
    def audit(caller: Caller, action: str, count: int, who: str, ids: list[str] | None = None, note: str = "") -> None:
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "who": who, "client": caller.client,
                "user": caller.user, "action": action, "count": count}
        if ids:
            line["ids"] = ids[:20]
        if note:
            line["note"] = note
        audit_log.info("%s", json.dumps(line))


class RateLimiter:
    """Per client, over the last 60 s: at most `requests` requests and `upload_bytes` bytes of pictures."""

    WINDOW_S = 60.0

    def __init__(self, requests: int, upload_bytes: int):
        self.requests, self.upload_bytes = requests, upload_bytes
        self._seen: dict[str, deque[tuple[float, int, int]]] = defaultdict(deque)  # (when, requests, bytes)
        self._lock = threading.Lock()

    def charge(self, client: str, nbytes: int = 0, requests: int = 1) -> None:
        """Count `requests` request(s) sending `nbytes` from `client`, or Refused (counting nothing) if that would
        go over a limit."""
        now = time.monotonic()
        with self._lock:
            seen = self._seen[client]
            while seen and seen[0][0] <= now - self.WINDOW_S:
                seen.popleft()
            wait = int(self.WINDOW_S - (now - seen[0][0])) + 1 if seen else 0
            if self.requests and requests and sum(r for _, r, _ in seen) + requests > self.requests:
                raise Refused(f"too many requests from you: at most {self.requests} a minute; try again in {wait} s")
            if self.upload_bytes and nbytes and sum(b for _, _, b in seen) + nbytes > self.upload_bytes:
                raise Refused(f"too many pictures from you: at most {self.upload_bytes / 2**20:.3g} MB a minute; "
                              f"try again in {wait} s")
            seen.append((now, requests, nbytes))
            if len(self._seen) > 10_000:  # forget idle clients
                for key in [k for k, v in self._seen.items() if not v or v[-1][0] <= now - self.WINDOW_S]:
                    del self._seen[key]
