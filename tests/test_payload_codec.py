"""Payload encryption: history read without the key shows no secret or indicator; with the
key (a client, or the Web UI through the codec server) it decodes."""

from __future__ import annotations

import base64
import os
import uuid
from datetime import timedelta

import httpx
import pytest
from google.protobuf import json_format
from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from handrail.ops.codec import ENCODING, AesGcmCodec, PayloadKeyError, codec_from_env, data_converter, parse_key
from handrail.ops.codec_server import codec_app

SECRET = "password=hunter2"
INDICATOR = "login-corp-example-sso.example"
KEY = os.urandom(32)


class Note(BaseModel):
    text: str


@activity.defn
async def codec_echo(note: Note) -> Note:
    return Note(text=note.text.upper())


@workflow.defn
class CodecEcho:
    @workflow.run
    async def run(self, note: Note) -> Note:
        return await workflow.execute_activity(codec_echo, note, start_to_close_timeout=timedelta(seconds=10))


@pytest.mark.unit
async def test_codec_round_trip_rotation_and_plain_passthrough():
    old, new = os.urandom(32), os.urandom(32)
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"text": "' + SECRET.encode() + b'"}')
    sealed = await AesGcmCodec([old]).encode([plain])
    assert sealed[0].metadata["encoding"] == ENCODING and SECRET.encode() not in sealed[0].SerializeToString()
    rotated = AesGcmCodec([new, old])  # new encrypts, both decrypt
    assert await rotated.decode(sealed) == [plain]
    assert await rotated.decode([plain]) == [plain]  # written before encryption was on
    with pytest.raises(PayloadKeyError, match="not configured"):
        await AesGcmCodec([new]).decode(sealed)
    tampered = Payload(metadata=sealed[0].metadata, data=sealed[0].data[:-1] + bytes([sealed[0].data[-1] ^ 1]))
    with pytest.raises(PayloadKeyError, match="fails authentication"):
        await AesGcmCodec([old]).decode([tampered])


@pytest.mark.unit
def test_key_from_the_environment():
    assert codec_from_env({}) is None and data_converter(environ={}).payload_codec is None
    assert parse_key(KEY.hex()) == KEY == parse_key(base64.urlsafe_b64encode(KEY).decode().rstrip("="))
    assert data_converter(environ={"HANDRAIL_PAYLOAD_KEY": base64.b64encode(KEY).decode()}).payload_codec
    for bad, words in (("zz" * 32, "neither"), (base64.b64encode(b"short").decode(), "32 bytes")):
        with pytest.raises(PayloadKeyError, match=words):
            parse_key(bad)


@pytest.mark.workflow
async def test_history_without_the_key_shows_no_secret(time_env):
    codec = AesGcmCodec([KEY])
    sealed = Client(time_env.client.service_client, namespace=time_env.client.namespace,
                    data_converter=data_converter(codec))
    queue, workflow_id = f"codec-{uuid.uuid4().hex[:8]}", f"codec-{uuid.uuid4().hex}"
    async with Worker(sealed, task_queue=queue, workflows=[CodecEcho], activities=[codec_echo],
                      workflow_runner=UnsandboxedWorkflowRunner()):
        result = await sealed.execute_workflow(CodecEcho.run, Note(text=f"{SECRET} {INDICATOR}"),
                                               id=workflow_id, task_queue=queue)
    assert result.text == f"{SECRET} {INDICATOR}".upper()
    # The plain client (no key: what a Web UI user sees) gets ciphertext only, in the whole history.
    history = await time_env.client.get_workflow_handle(workflow_id).fetch_history()
    raw = history.to_json().encode() + b"".join(e.SerializeToString() for e in history.events)
    for text in (SECRET, INDICATOR, SECRET.upper(), INDICATOR.upper()):
        assert text.encode() not in raw
        assert base64.b64encode(text.encode())[:12] not in raw
    # Control: the same run without a key keeps its plaintext in history (the check can fail).
    async with Worker(time_env.client, task_queue=queue + "-plain", workflows=[CodecEcho], activities=[codec_echo],
                      workflow_runner=UnsandboxedWorkflowRunner()):
        await time_env.client.execute_workflow(CodecEcho.run, Note(text=f"{SECRET} {INDICATOR}"),
                                               id=workflow_id + "-plain", task_queue=queue + "-plain")
    plain = await time_env.client.get_workflow_handle(workflow_id + "-plain").fetch_history()
    assert SECRET.encode() in b"".join(e.SerializeToString() for e in plain.events)
    # With the key, the same history decodes.
    started = history.events[0].workflow_execution_started_event_attributes.input.payloads
    [decoded] = await codec.decode(list(started))
    assert SECRET.encode() in decoded.data and INDICATOR.encode() in decoded.data


@pytest.mark.unit
async def test_codec_server_decodes_for_the_web_ui_origin_only():
    codec = AesGcmCodec([KEY])
    ui = "http://127.0.0.1:8233"
    # httpx's own ASGI transport: the app is served in-process, as the Web UI's requests would reach it.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=codec_app(codec, [ui])),
                                 base_url="http://codec.test") as client:
        await _check_codec_server(client, ui)


async def _check_codec_server(client: httpx.AsyncClient, ui: str) -> None:
    plain = Payload(metadata={"encoding": b"json/plain"}, data=INDICATOR.encode())
    encoded = await client.post("/encode", json=json_format.MessageToDict(Payloads(payloads=[plain])),
                                headers={"X-Namespace": "default"})
    assert encoded.status_code == 200 and INDICATOR not in encoded.text
    decoded = await client.post("/decode", content=encoded.content, headers={"Origin": ui})
    assert decoded.status_code == 200 and decoded.headers["access-control-allow-origin"] == ui
    back = json_format.ParseDict(decoded.json(), Payloads())
    assert list(back.payloads) == [plain]
    preflight = await client.options("/decode", headers={"Origin": ui, "Access-Control-Request-Method": "POST",
                                                         "Access-Control-Request-Headers": "content-type,x-namespace"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == ui
    other = await client.options("/decode", headers={"Origin": "http://evil.example",
                                                     "Access-Control-Request-Method": "POST"})
    assert other.headers.get("access-control-allow-origin") != "http://evil.example"
    assert (await client.post("/decode", content=b"not json")).status_code == 400
