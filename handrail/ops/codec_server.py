"""`handrail codec-server`: the HTTP codec endpoint the Temporal Web UI decrypts through.

The UI (Settings -> Codec Server, or ``TEMPORAL_CODEC_ENDPOINT``) POSTs payloads to
``/decode`` (and tools to ``/encode``) as JSON ``{"payloads": [<Payload as proto JSON>]}``
and gets the same shape back. Browsers call it from the UI's origin, so CORS allows that
origin (and only it). Whoever can reach this server can read history: it listens on the
loopback interface by default, next to the analyst's browser, and holds the key in
memory only.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from handrail.ops.codec import AesGcmCodec, PayloadKeyError


def codec_app(codec: AesGcmCodec, origins: list[str]) -> FastAPI:
    app = FastAPI(title="Handrail payload codec", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(CORSMiddleware, allow_origins=origins, allow_credentials=True,
                       allow_methods=["POST", "OPTIONS"],
                       allow_headers=["Content-Type", "X-Namespace", "Authorization"])

    async def convert(request: Request, decode: bool) -> dict:
        try:
            body = await request.body()
            payloads = json_format.Parse(body, Payloads(), ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, UnicodeDecodeError):
            raise HTTPException(400, "the body is not a JSON {\"payloads\": [...]} document") from None
        try:
            out = await (codec.decode if decode else codec.encode)(list(payloads.payloads))
        except PayloadKeyError as exc:
            raise HTTPException(400, str(exc)) from None
        return json_format.MessageToDict(Payloads(payloads=out))

    @app.post("/decode")
    async def decode(request: Request) -> dict:
        return await convert(request, decode=True)

    @app.post("/encode")
    async def encode(request: Request) -> dict:
        return await convert(request, decode=False)

    return app
