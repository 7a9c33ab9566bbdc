"""What every handler needs of a request: who is calling (app/access.py) and charging them fairly, and turning
errors a person can fix into messages."""

from __future__ import annotations

import functools
import logging
import os

import gradio as gr

from app.access import Caller, Refused, client_address
from app.service import SearchService
from indexer.store import StoreError
from training.images import BadImage

log = logging.getLogger(__name__)


def errors(fn):
    """Errors a person can fix become gr.Error (a message in the page, an error the API client sees). The
    signature is kept (functools.wraps), so the API names each parameter and knows its default."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (BadImage, StoreError, ValueError, FileNotFoundError, Refused) as e:
            raise gr.Error(str(e)) from None
        except Exception as e:  # the server keeps serving; the log has the traceback
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"unexpected error ({type(e).__name__}); the server log has the details") from None

    return wrapped


def caller(service: SearchService, request: gr.Request | None, profile=None, oauth_token=None,
           token_text=None) -> Caller:
    """Who sent `request`: its client address (app.access.client_address), signed-in user, and admin token."""
    headers = request.headers if request is not None else {}
    bearer = headers.get("authorization") or ""
    token = bearer[7:].strip() if bearer.lower().startswith("bearer ") else ""
    user = getattr(profile, "username", None)
    orgs: tuple[str, ...] = ()
    if user and oauth_token is not None and service.access.write_orgs:
        from huggingface_hub import whoami

        orgs = tuple(o["name"].lower() for o in whoami(oauth_token.token).get("orgs", []))
    peer = request.client.host if request is not None and request.client else "unknown"
    getlist = getattr(headers, "getlist", None)
    forwarded = getlist("x-forwarded-for") if getlist else headers.get("x-forwarded-for")
    host = client_address(peer, forwarded, service.settings.trusted_hops)
    return Caller(client=host, user=user, orgs=orgs, token=token or str(token_text or "").strip())


def charge(service: SearchService, request, *paths, nbytes: int = 0, requests: int = 1) -> Caller:
    """Fair use: one request (and the pictures it sends) against this client's allowance."""
    who = caller(service, request)
    sizes = sum(os.path.getsize(p) for p in paths if p and os.path.exists(p))
    service.limiter.charge(who.client, sizes + nbytes, requests)
    return who
