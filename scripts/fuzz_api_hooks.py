"""Schemathesis hooks for scripts/fuzz-api: how to send a body of the media types the document
uses beyond JSON (the policy upload is a TOML text)."""

import schemathesis


@schemathesis.serializer("application/toml")
class TomlSerializer:
    def as_requests(self, context, value):
        data = value if isinstance(value, bytes) else str(value).encode("utf-8")
        return {"data": data}

    def as_werkzeug(self, context, value):
        return self.as_requests(context, value)
