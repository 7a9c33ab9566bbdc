"""The Add & delete tab: who may write here, adding pictures (checked for duplicates first if wanted), deleting by
id. Its layout and its handlers together."""

from __future__ import annotations

import gradio as gr

from app.requests import caller, charge, errors
from app.service import SearchService
from app.settings import DUPLICATE_COSINE


class Handlers:
    def __init__(self, service: SearchService):
        self.service = service

    @errors
    def add(self, files, label, token=None, request: gr.Request = None, profile: gr.OAuthProfile | None = None,
            oauth_token: gr.OAuthToken | None = None):
        """Add uploaded images (one label for all, optional) to the collection; returns what was added. Where the
        collection is read-only, needs a credential: the admin token (an `Authorization: Bearer` header, or
        `token`) or a signed-in writer."""
        who = caller(self.service, request, profile, oauth_token, token)
        writer = self.service.access.writer(who, "add")
        if not files:
            raise gr.Error("choose one or more image files to add")
        charge(self.service, request, *files)
        items = [(self.service.read_upload(f), label or None) for f in files]
        added, errors_ = self.service.add(items)
        self.service.access.audit(who, "add", len(added), writer, [a["id"] for a in added],
                                  note=f"{len(errors_)} refused" if errors_ else "")
        if not added:
            raise gr.Error("nothing was added: " + "; ".join(errors_))
        return {"added": added, "errors": errors_}, self.service.status()

    @errors
    def delete(self, ids, token=None, request: gr.Request = None, profile: gr.OAuthProfile | None = None,
               oauth_token: gr.OAuthToken | None = None):
        """Delete images by id (comma- or newline-separated); needs a credential like /add."""
        who = caller(self.service, request, profile, oauth_token, token)
        writer = self.service.access.writer(who, "delete")
        charge(self.service, request)
        wanted = [i for i in str(ids or "").replace(",", "\n").splitlines() if i.strip()]
        if not wanted:
            raise gr.Error("give the id(s) of the image(s) to delete (the `id` of a search result)")
        deleted = self.service.delete(wanted)
        self.service.access.audit(who, "delete", len(deleted), writer, deleted)
        return {"deleted": len(deleted)}, self.service.status()

    @errors
    def check_duplicates(self, file, threshold=DUPLICATE_COSINE, request: gr.Request = None):
        """Before adding an image: which stored images it would duplicate."""
        if not file:
            raise gr.Error("choose an image to check")
        charge(self.service, request, file)
        return self.service.check_duplicates(self.service.read_upload(file), float(threshold))

    def who_may_write(self, profile: gr.OAuthProfile | None = None):
        """The tab's sentence for whoever is signed in (organisations are checked when they write)."""
        user = getattr(profile, "username", None)
        if user and user.lower() in self.service.access.write_users:
            return f"Signed in as @{user}: you may add and delete."
        return self.service.access.describe(user)


def build(service: SearchService, demo: gr.Blocks, status: gr.Markdown) -> None:
    """The tab's layout and its events; `status` is the page's line about the collection, updated after a write."""
    h = Handlers(service)
    access_note = gr.Markdown(service.access.describe(), elem_id="access-note")
    if service.access.oauth:
        gr.LoginButton()
    admin_token = gr.Textbox(label="Admin token", type="password", visible=service.access.token_set,
                             placeholder="the ADMIN_TOKEN this app was started with", elem_id="admin-token")
    files = gr.File(file_count="multiple", label="Images to add", type="filepath", elem_id="add-files")
    add_label = gr.Textbox(label="Label (optional)", placeholder=", ".join(service.embedder.labels[:3]) + ", …")
    add_btn = gr.Button("Add to collection", variant="primary")
    add_out = gr.JSON(label="Added")
    with gr.Row():
        dup_file = gr.File(label="Check one image for duplicates before adding it", type="filepath")
        dup_thr = gr.Slider(0.5, 1.0, value=DUPLICATE_COSINE, step=0.005, label="Duplicate if cosine ≥")
    dup_btn = gr.Button("Check for duplicates")
    dup_out = gr.JSON(label="Would duplicate")
    del_ids = gr.Textbox(label="Ids to delete", lines=2)
    del_btn = gr.Button("Delete", variant="stop")
    del_out = gr.JSON(label="Deleted")

    add_btn.click(h.add, [files, add_label, admin_token], [add_out, status], api_name="add")
    del_btn.click(h.delete, [del_ids, admin_token], [del_out, status], api_name="delete")
    dup_btn.click(h.check_duplicates, [dup_file, dup_thr], dup_out, api_name="check_duplicates")
    if service.access.oauth:
        demo.load(h.who_may_write, None, access_note, api_name=False)
