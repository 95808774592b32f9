"""SSH signatures (`ssh-keygen -Y sign`) checked without ssh-keygen: who really decided.

Analysts sign with what they already have: a key file, ssh-agent or a FIDO hardware key.
This module reads OpenSSH public key lines (as in `allowed_signers`), parses the armored
SSHSIG format (OpenSSH PROTOCOL.sshsig) and verifies it for ssh-ed25519, the three
ecdsa-sha2-nistp curves, and the FIDO kinds sk-ssh-ed25519@openssh.com and
sk-ecdsa-sha2-nistp256@openssh.com (PROTOCOL.u2f: the authenticator signs the hash of
the application, a flags byte and a counter before the hash of the message). It also
signs in-process from an unencrypted OpenSSH private key (ed25519 or ECDSA).

Pure and deterministic (no I/O, no clock), so workflow code verifies decisions itself.
`sshsig` on PyPI verifies only ed25519 and RSA, hence the few lines on `cryptography`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm as UnsupportedAlgorithmError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

MAGIC = b"SSHSIG"
BEGIN = "-----BEGIN SSH SIGNATURE-----"
END = "-----END SSH SIGNATURE-----"
DECISION_NAMESPACE = "handrail-decision"
REQUEST_NAMESPACE = "handrail-request"
MAX_ARMOR = 16_384  # a signature is a few hundred bytes; anything longer is hostile

_CURVES = {
    "nistp256": (ec.SECP256R1, hashes.SHA256),
    "nistp384": (ec.SECP384R1, hashes.SHA384),
    "nistp521": (ec.SECP521R1, hashes.SHA512),
}
_HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}
KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


class SignatureError(ValueError):
    """A key or signature is unusable or does not verify; the message is one sentence."""


# -- the SSH wire format ----------------------------------------------------------------
class _Reader:
    def __init__(self, data: bytes, what: str):
        self.data, self.pos, self.what = data, 0, what

    def u32(self) -> int:
        if self.pos + 4 > len(self.data):
            raise SignatureError(f"the {self.what} is truncated")
        (value,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos += 4
        return value

    def byte(self) -> int:
        if self.pos + 1 > len(self.data):
            raise SignatureError(f"the {self.what} is truncated")
        self.pos += 1
        return self.data[self.pos - 1]

    def string(self) -> bytes:
        size = self.u32()
        if self.pos + size > len(self.data):
            raise SignatureError(f"the {self.what} is truncated")
        value = self.data[self.pos:self.pos + size]
        self.pos += size
        return value

    def text(self) -> str:
        try:
            return self.string().decode("ascii")
        except UnicodeDecodeError:
            raise SignatureError(f"the {self.what} has a non-ASCII name") from None

    def mpint(self) -> int:
        return int.from_bytes(self.string(), "big", signed=False)

    def end(self) -> None:
        if self.pos != len(self.data):
            raise SignatureError(f"the {self.what} has trailing bytes")


def _string(value: bytes | str) -> bytes:
    if isinstance(value, str):
        value = value.encode()
    return struct.pack(">I", len(value)) + value


def _mpint(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 8) // 8, "big") if value else b""
    return _string(raw)


# -- public keys ------------------------------------------------------------------------
@dataclass(frozen=True)
class PublicKey:
    """One OpenSSH public key: its type, its wire blob and its comment."""

    kind: str
    blob: bytes
    comment: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)

    def line(self) -> str:
        text = f"{self.kind} {base64.b64encode(self.blob).decode()}"
        return f"{text} {self.comment}" if self.comment else text


def fingerprint(blob: bytes) -> str:
    """`SHA256:…` as `ssh-keygen -l` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def parse_public_key(line: str) -> PublicKey:
    """`ssh-ed25519 AAAA… bob@laptop` (an `allowed_signers` line may carry a principal first)."""
    parts = (line or "").strip().split(None, 2)
    if parts and parts[0] not in KEY_TYPES and len(parts) >= 2:  # allowed_signers: principal [options] type key
        rest = (line or "").strip().split()
        for i, word in enumerate(rest):
            if word in KEY_TYPES:
                parts = [word] + rest[i + 1:i + 2] + ([" ".join(rest[i + 2:])] if len(rest) > i + 2 else [])
                break
    if len(parts) < 2:
        raise SignatureError("a public key line must read 'TYPE BASE64 [comment]' "
                             "(e.g. 'ssh-ed25519 AAAA… bob@laptop')")
    kind, b64 = parts[0], parts[1]
    if kind not in KEY_TYPES:
        raise SignatureError(f"key type {kind[:40]!r} is not supported (use one of {', '.join(KEY_TYPES)})")
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"the {kind} key is not valid base64") from None
    _load_key(blob)  # refuses a blob whose type or point is wrong
    if _Reader(blob, "public key").text() != kind:
        raise SignatureError(f"the key's blob is not a {kind} key")
    return PublicKey(kind=kind, blob=blob, comment=parts[2].strip() if len(parts) > 2 else "")


@dataclass(frozen=True)
class _Key:
    kind: str
    verifier: object
    hash_cls: type | None
    application: bytes | None


@lru_cache(maxsize=1024)
def _load_key(blob: bytes) -> _Key:
    r = _Reader(blob, "public key")
    kind = r.text()
    try:
        if kind in ("ssh-ed25519", "sk-ssh-ed25519@openssh.com"):
            raw = r.string()
            if len(raw) != 32:
                raise SignatureError("an ed25519 key must be 32 bytes")
            key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
            application = r.string() if kind.startswith("sk-") else None
            r.end()
            return _Key(kind, key, None, application)
        if kind.startswith("ecdsa-sha2-") or kind == "sk-ecdsa-sha2-nistp256@openssh.com":
            curve_name = r.text()
            expected = "nistp256" if kind.startswith("sk-") else kind.removeprefix("ecdsa-sha2-")
            if curve_name != expected or curve_name not in _CURVES:
                raise SignatureError(f"the {kind} key names curve {curve_name[:20]!r}")
            curve, hash_cls = _CURVES[curve_name]
            point = ec.EllipticCurvePublicKey.from_encoded_point(curve(), r.string())
            application = r.string() if kind.startswith("sk-") else None
            r.end()
            return _Key(kind, point, hash_cls, application)
    except ValueError as exc:
        if isinstance(exc, SignatureError):
            raise
        raise SignatureError(f"the {kind} key is not a valid point ({exc})") from None
    raise SignatureError(f"key type {kind[:40]!r} is not supported")


# -- SSHSIG -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Signature:
    """A parsed SSHSIG: the signer's public key blob and what it signed with."""

    public_key: bytes
    namespace: str
    hash_algorithm: str
    sig_kind: str
    sig_blob: bytes

    @property
    def key_kind(self) -> str:
        return _Reader(self.public_key, "public key").text()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)


def _unarmor(armored: str) -> bytes:
    if not isinstance(armored, str) or not armored.strip():
        raise SignatureError("the signature is empty")
    if len(armored) > MAX_ARMOR:
        raise SignatureError("the signature is too long to be an SSH signature")
    text = armored.strip()
    if not text.startswith(BEGIN) or not text.endswith(END):
        raise SignatureError("the signature is not an armored SSH signature (BEGIN/END SSH SIGNATURE)")
    body = "".join(text[len(BEGIN):-len(END)].split())
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("the signature's armor is not valid base64") from None


def parse_signature(armored: str) -> Signature:
    r = _Reader(_unarmor(armored), "signature")
    if r.data[:6] != MAGIC:
        raise SignatureError("the signature does not start with SSHSIG")
    r.pos = 6
    version = r.u32()
    if version != 1:
        raise SignatureError(f"SSHSIG version {version} is not supported")
    public_key = r.string()
    namespace = r.text()
    r.string()  # reserved
    hash_algorithm = r.text()
    sig = r.string()
    r.end()
    if hash_algorithm not in _HASHES:
        raise SignatureError(f"hash algorithm {hash_algorithm[:20]!r} is not allowed (sha256 or sha512)")
    sr = _Reader(sig, "signature")
    sig_kind = sr.text()
    return Signature(public_key, namespace, hash_algorithm, sig_kind, sig[sr.pos:])


def signed_data(message: bytes, namespace: str, hash_algorithm: str = "sha512") -> bytes:
    """What an SSHSIG signs: the magic, the namespace and the hash of the message."""
    digest = _HASHES[hash_algorithm](message).digest()
    return MAGIC + _string(namespace) + _string(b"") + _string(hash_algorithm) + _string(digest)


def verify(armored: str, message: bytes, namespace: str,
           allowed: list[str] | tuple[str, ...] | None = None) -> Signature:
    """Verify an armored SSHSIG over `message` in `namespace`; return it, or raise SignatureError.

    With `allowed` (public key lines), the signing key must be one of them.
    """
    sig = parse_signature(armored)
    if sig.namespace != namespace:
        raise SignatureError(f"the signature is for namespace {sig.namespace[:40]!r}, not {namespace!r}")
    if allowed is not None:
        blobs = set()
        for line in allowed:
            try:
                blobs.add(parse_public_key(line).blob)
            except SignatureError:
                continue
        if sig.public_key not in blobs:
            raise SignatureError(f"the signing key {sig.fingerprint} is not one of the allowed keys")
    verify_raw(sig.public_key, sig.sig_kind, sig.sig_blob, signed_data(message, namespace, sig.hash_algorithm))
    return sig


def verify_raw(public_key: bytes, sig_kind: str, sig_blob: bytes, data: bytes) -> None:
    """Check one SSH signature (`sig_kind` + the bytes after its name) over `data`."""
    key = _load_key(public_key)
    if sig_kind != key.kind:
        raise SignatureError(f"a {sig_kind[:40]} signature cannot come from a {key.kind} key")
    r = _Reader(sig_blob, "signature")
    raw = r.string()
    if key.application is not None:  # PROTOCOL.u2f: flags and counter follow the signature
        flags, counter = r.byte(), r.u32()
        r.end()
        if not flags & 0x01:
            raise SignatureError("the security key did not confirm user presence")
        data = (hashlib.sha256(key.application).digest() + bytes([flags]) + struct.pack(">I", counter)
                + hashlib.sha256(data).digest())
    else:
        r.end()
    try:
        if isinstance(key.verifier, ed25519.Ed25519PublicKey):
            if len(raw) != 64:
                raise SignatureError("an ed25519 signature must be 64 bytes")
            key.verifier.verify(raw, data)
        else:
            er = _Reader(raw, "ECDSA signature")
            rr, ss = er.mpint(), er.mpint()
            er.end()
            hash_cls = hashes.SHA256 if key.application is not None else key.hash_cls
            key.verifier.verify(encode_dss_signature(rr, ss), data, ec.ECDSA(hash_cls()))
    except InvalidSignature:
        raise SignatureError("the signature does not match the signed document") from None


# -- signing in-process -----------------------------------------------------------------
def load_private_key(pem: bytes):
    """An unencrypted OpenSSH (or PEM) private key: ed25519 or ECDSA."""
    try:
        key = serialization.load_ssh_private_key(pem, password=None)
    except TypeError:
        raise SignatureError("the key file is encrypted; sign with ssh-agent (`ssh-keygen -Y sign`) instead") from None
    except (ValueError, UnsupportedAlgorithmError):
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except TypeError:
            raise SignatureError("the key file is encrypted; sign with ssh-agent instead") from None
        except Exception:
            raise SignatureError("the key file is not an OpenSSH private key") from None
    if not isinstance(key, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey)):
        raise SignatureError("only ed25519 and ECDSA keys can sign decisions")
    return key


def public_key_of(private_key, comment: str = "") -> PublicKey:
    line = private_key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    parsed = parse_public_key(line.decode())
    return PublicKey(parsed.kind, parsed.blob, comment)


def sign(private_key, message: bytes, namespace: str, hash_algorithm: str = "sha512") -> str:
    """An armored SSHSIG over `message`, byte for byte the format `ssh-keygen -Y sign` writes."""
    public = public_key_of(private_key)
    data = signed_data(message, namespace, hash_algorithm)
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        sig = _string(public.kind) + _string(private_key.sign(data))
    else:
        hash_cls = _CURVES[public.kind.removeprefix("ecdsa-sha2-")][1]
        r, s = decode_dss_signature(private_key.sign(data, ec.ECDSA(hash_cls())))
        sig = _string(public.kind) + _string(_mpint(r) + _mpint(s))
    return armor(MAGIC + struct.pack(">I", 1) + _string(public.blob) + _string(namespace) + _string(b"")
                 + _string(hash_algorithm) + _string(sig))


def armor(blob: bytes) -> str:
    b64 = base64.b64encode(blob).decode()
    lines = [b64[i:i + 70] for i in range(0, len(b64), 70)]
    return "\n".join([BEGIN, *lines, END]) + "\n"


def new_ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def private_key_file(private_key) -> bytes:
    """The OpenSSH private key file for a key (unencrypted; the caller sets its mode to 0600)."""
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                     serialization.NoEncryption())

