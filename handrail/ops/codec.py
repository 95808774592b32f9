"""Temporal payload encryption: what workflows carry is unreadable without the key.

Workflow history holds every trigger, activity argument and result — indicators, message
subjects, reasons, sometimes what an analyst pasted. Anyone with Web UI access reads it.
With ``HANDRAIL_PAYLOAD_KEY`` set, every client and worker (one :func:`data_converter`,
used by :func:`handrail.ops.temporal.connect` and the tests) encrypts each payload with
AES-256-GCM before it leaves the process; failure messages are encoded into payloads too.
The Web UI shows ciphertext unless it is pointed at ``handrail codec-server``, which
decrypts for people who hold the key.

Key: 32 bytes, as 64 hex characters or base64. Several keys, comma-separated: the first
encrypts, all decrypt (rotation). Each payload names its key by id (the first 8 bytes of
the key's SHA-256, hex) in its metadata. Unencrypted payloads pass through on decode, so
history written before the key was set stays readable. Without the variable, payloads
are plain (the default data converter), as before.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

KEY_ENV = "HANDRAIL_PAYLOAD_KEY"
ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
_NONCE = 12


class PayloadKeyError(ValueError):
    """The payload key setting cannot be used; the message says why in one sentence."""


def parse_key(text: str) -> bytes:
    text = text.strip()
    try:
        if len(text) == 64:
            raw = bytes.fromhex(text)
        else:  # standard or URL-safe base64, padding optional
            std = text.replace("-", "+").replace("_", "/")
            raw = base64.b64decode(std + "=" * (-len(std) % 4), validate=True)
    except (ValueError, binascii.Error):
        raise PayloadKeyError(f"{KEY_ENV} is neither 64 hex characters nor base64") from None
    if len(raw) != 32:
        raise PayloadKeyError(f"{KEY_ENV} must be 32 bytes (AES-256), not {len(raw)}")
    return raw


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


class AesGcmCodec(PayloadCodec):
    """AES-256-GCM over each serialised payload; the key id travels in the metadata."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise PayloadKeyError("at least one payload key is needed")
        self._encrypt_id = key_id(keys[0])
        self._ciphers = {key_id(k): AESGCM(k) for k in keys}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        cipher = self._ciphers[self._encrypt_id]
        out = []
        for payload in payloads:
            nonce = os.urandom(_NONCE)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), self._encrypt_id.encode())
            out.append(Payload(metadata={"encoding": ENCODING, KEY_ID: self._encrypt_id.encode()},
                               data=nonce + sealed))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                out.append(payload)  # written before encryption was on
                continue
            kid = payload.metadata.get(KEY_ID, b"").decode()
            cipher = self._ciphers.get(kid)
            if cipher is None:
                raise PayloadKeyError(f"a payload is encrypted with key {kid}, which is not configured")
            try:
                plain = cipher.decrypt(payload.data[:_NONCE], payload.data[_NONCE:], kid.encode())
            except InvalidTag:
                raise PayloadKeyError(f"a payload encrypted with key {kid} fails authentication") from None
            out.append(Payload.FromString(plain))
        return out


def codec_from_env(environ: dict[str, str] | None = None) -> AesGcmCodec | None:
    """The codec for ``HANDRAIL_PAYLOAD_KEY``, or None when it is not set."""
    value = (environ if environ is not None else os.environ).get(KEY_ENV, "").strip()
    if not value:
        return None
    return AesGcmCodec([parse_key(part) for part in value.split(",") if part.strip()])


def data_converter(codec: PayloadCodec | None = None, *, environ: dict[str, str] | None = None) -> DataConverter:
    """Pydantic payloads, encrypted when a codec is given or the key is set in the environment."""
    codec = codec if codec is not None else codec_from_env(environ)
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec,
                               failure_converter_class=DefaultFailureConverterWithEncodedAttributes)
