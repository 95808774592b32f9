"""Signed checkpoints of the audit chain, so that a rewritten chain or a removed tail is caught.

The hash chain shows an edited row, but someone with write access to the ledger could cut
its tail, or rewrite every row and recompute every hash, and the chain would still verify.
So the worker regularly signs a *checkpoint* — how many rows the audit had and the hash of
the last one — with the installation's own Ed25519 key, and ships it away from the ledger:
to the SIEM and to a second, append-only file. `handrail audit verify` then checks that the
ledger still has every row each checkpoint counted, with the same hash at that position.

The format is the C2SP signed note carrying a tlog-style checkpoint body:

    <origin>
    <number of audit rows>
    <base64 of the head row's SHA-256>
    time <UTC time of signing>
    prev <base64 of the previous checkpoint's signature, or ->

    — <origin> <base64(4-byte key id || 64-byte Ed25519 signature)>

Each checkpoint names the one before it (its signature), so the checkpoint file cannot be
trimmed in the middle unnoticed either; the copy in the SIEM covers a file cut at its end.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from handrail.gate.ledger import GENESIS, Ledger

KEY_FILE = "checkpoint-key.pem"
PUBLIC_FILE = "checkpoint-key.pub"
LOG_FILE = "checkpoints.log"
_ALG_ED25519 = b"\x01"
_DASH = "\u2014"


class CheckpointError(ValueError):
    """A checkpoint cannot be read, or no longer matches; one sentence naming it."""


# -- the installation key ------------------------------------------------------------------
def installation_key(home: Path) -> Ed25519PrivateKey:
    """The installation's signing key, created (mode 0600) on first use under HANDRAIL_HOME."""
    path = Path(home) / KEY_FILE
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise CheckpointError(f"{path} is not an Ed25519 key.")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    (Path(home) / PUBLIC_FILE).write_text(base64.b64encode(_raw_public(key.public_key())).decode() + "\n")
    return key


def public_key(home: Path) -> Ed25519PublicKey | None:
    """The installation's public key (from its .pub file, else its private key), if it has one."""
    pub = Path(home) / PUBLIC_FILE
    if pub.exists():
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(pub.read_text().strip()))
    if (Path(home) / KEY_FILE).exists():
        return installation_key(home).public_key()
    return None


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(origin: str, key: Ed25519PublicKey) -> bytes:
    """The C2SP signed-note key id: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(origin.encode() + b"\n" + _ALG_ED25519 + _raw_public(key)).digest()[:4]


# -- the checkpoint itself -----------------------------------------------------------------
@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    head: str  # hex SHA-256 of the size-th audit row (GENESIS when empty)
    at: str
    prev: str  # base64 signature of the previous checkpoint, or "-"
    signature: str = ""  # base64 Ed25519 signature over body()

    def body(self) -> str:
        head = base64.b64encode(bytes.fromhex(self.head)).decode()
        return f"{self.origin}\n{self.size}\n{head}\ntime {self.at}\nprev {self.prev}\n"

    def note(self, key: Ed25519PublicKey) -> str:
        blob = base64.b64encode(key_id(self.origin, key) + base64.b64decode(self.signature)).decode()
        return f"{self.body()}\n{_DASH} {self.origin} {blob}\n"


def sign(key: Ed25519PrivateKey, origin: str, size: int, head: str, at: datetime, prev: str) -> Checkpoint:
    stamp = at.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    unsigned = Checkpoint(origin=origin, size=size, head=head, at=stamp, prev=prev)
    signature = base64.b64encode(key.sign(unsigned.body().encode())).decode()
    return Checkpoint(origin, size, head, stamp, prev, signature)


def parse_note(text: str, key: Ed25519PublicKey) -> Checkpoint:
    """A signed note back to a checkpoint, its signature verified; CheckpointError otherwise."""
    body, sep, signatures = text.partition("\n\n")
    if not sep:
        raise CheckpointError("it is not a signed note (no blank line before its signatures)")
    lines = body.split("\n")
    if len(lines) != 5 or not lines[3].startswith("time ") or not lines[4].startswith("prev "):
        raise CheckpointError("its body is not a Handrail checkpoint")
    origin, size, head64 = lines[0], lines[1], lines[2]
    try:
        head = base64.b64decode(head64, validate=True).hex()
        count = int(size)
    except ValueError:
        raise CheckpointError("its size or head hash is malformed") from None
    wanted = key_id(origin, key)
    for line in signatures.strip().split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH or parts[1] != origin:
            continue
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except ValueError:
            continue
        if blob[:4] != wanted:
            continue
        try:
            key.verify(blob[4:], (body + "\n").encode())
        except InvalidSignature:
            raise CheckpointError("its signature does not verify with the installation key") from None
        return Checkpoint(origin, count, head, lines[3][5:], lines[4][5:], base64.b64encode(blob[4:]).decode())
    raise CheckpointError("it carries no signature by the installation key")


# -- the append-only file ------------------------------------------------------------------
def append_checkpoint(home: Path, ledger: Ledger, origin: str, now: datetime | None = None) -> Checkpoint:
    """Sign the ledger's current head, chained to the last checkpoint, and append it to the file.

    The file is locked while the last checkpoint is read and the new one written, so workers
    sharing a home never fork the chain of checkpoints.
    """
    key = installation_key(home)
    path = Path(home) / LOG_FILE
    with open(path, "a+", encoding="utf-8") as log:
        fcntl.flock(log, fcntl.LOCK_EX)
        try:
            log.seek(0)
            lines = [line for line in log.read().splitlines() if line.strip()]
            prev = "-"
            if lines:
                prev = parse_note(json.loads(lines[-1])["note"], key.public_key()).signature
            size, head = ledger.head()
            checkpoint = sign(key, origin, size, head, now or datetime.now(timezone.utc), prev)
            log.seek(0, os.SEEK_END)
            log.write(json.dumps({"note": checkpoint.note(key.public_key())}) + "\n")
            log.flush()
            os.fsync(log.fileno())
        finally:
            fcntl.flock(log, fcntl.LOCK_UN)
    return checkpoint


@dataclass
class CheckpointVerdict:
    ok: bool
    checked: int
    bad: int | None = None  # 1-based number of the first checkpoint that no longer matches
    reason: str = ""


def verify_ledger(home: Path, ledger: Ledger) -> CheckpointVerdict:
    """Check every checkpoint in the file, then the ledger against them, in one pass over the audit."""
    path = Path(home) / LOG_FILE
    if not path.exists():
        return CheckpointVerdict(True, 0)
    key = public_key(home)
    if key is None:
        return CheckpointVerdict(False, 0, 1, f"{path} exists but the installation key is missing")
    checkpoints: list[Checkpoint] = []
    prev = "-"
    for n, line in enumerate((ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()), 1):
        try:
            checkpoint = parse_note(json.loads(line)["note"], key)
        except (CheckpointError, ValueError, KeyError, TypeError) as exc:
            return CheckpointVerdict(False, n - 1, n, f"checkpoint {n} cannot be trusted: {exc}")
        if checkpoint.prev != prev:
            return CheckpointVerdict(False, n - 1, n, f"checkpoint {n} (signed {checkpoint.at}) does not follow "
                                                      "the one before it: the checkpoint file was edited")
        prev = checkpoint.signature
        checkpoints.append(checkpoint)
    by_size = sorted(enumerate(checkpoints, 1), key=lambda item: item[1].size)
    position = 0
    hashes = ledger.iter_hashes()
    current = GENESIS
    for n, checkpoint in by_size:
        while position < checkpoint.size:
            current = next(hashes, None)
            if current is None:
                return CheckpointVerdict(False, len(checkpoints), n, (
                    f"checkpoint {n} (signed {checkpoint.at}) counted {checkpoint.size} audit rows but the ledger "
                    f"has only {position}: rows were removed"))
            position += 1
        if current != checkpoint.head:
            return CheckpointVerdict(False, len(checkpoints), n, (
                f"checkpoint {n} (signed {checkpoint.at}) recorded a different hash for audit row {checkpoint.size}: "
                "the chain was rewritten"))
    return CheckpointVerdict(True, len(checkpoints))


def origin_for(home: Path) -> str:
    """This installation's log name: stable for as long as its key lives."""
    raw = _raw_public(installation_key(home).public_key())
    return f"handrail-audit/{hashlib.sha256(raw).hexdigest()[:16]}"
