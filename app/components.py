"""Gradio components of our own. (Gradio writes a .pyi stub beside any module that defines a component
subclass, which is why this one lives alone in a small module; the stub is git-ignored.)"""

import gradio as gr


class UploadedImage(gr.Image):
    """gr.Image whose upload reaches the handler as the path of the raw bytes: we decode them ourselves
    (training.images.open_image), so a broken or hostile file gets a message that says what to do, not a PIL
    traceback inside Gradio's preprocessing. `is_template` keeps gr.Image's page component."""

    is_template = True

    def preprocess(self, payload):
        if payload is None or (payload.url and payload.url.startswith("data:")):
            return super().preprocess(payload)
        return payload.path
