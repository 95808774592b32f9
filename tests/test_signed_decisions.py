"""Signed decisions: SSH signatures of every supported kind, and the rules the workflow applies.

The signature kinds are checked against the real `ssh-keygen` where it can make them
(ed25519, ECDSA) and, for the FIDO `sk-` kinds it cannot make without an authenticator,
against signatures built byte for byte per OpenSSH PROTOCOL.u2f with software keys.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from handrail.gate import signatures
from handrail.gate.approvals import ApprovalBook
from handrail.gate.decisions import DecisionDocument, change_digest
from handrail.gate.models import (
    Approver,
    Change,
    Decision,
    GatePolicy,
    Mode,
    RunState,
    RunStatus,
    StepRecord,
    StepState,
)
from handrail.gate.policy import PolicyError, parse_policy
from handrail.gate.signing import sign_decision, signed_decision
from tests.support import TEST_KEYS, make_decision, public_line

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
NS = signatures.DECISION_NAMESPACE
ROLES = {"alice": ["soc-analyst"], "bob": ["soc-analyst"], "erin": ["soc-analyst"], "carol": ["soc-lead"]}


# -- helpers ----------------------------------------------------------------------------
def ssh_keygen() -> str:
    path = shutil.which("ssh-keygen")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("ssh-keygen (openssh-client) is required under CI")
        pytest.skip("ssh-keygen (openssh-client) is not installed")
    return path


def _s(value: bytes | str) -> bytes:
    value = value.encode() if isinstance(value, str) else value
    return struct.pack(">I", len(value)) + value


def _mpint(value: int) -> bytes:
    return _s(value.to_bytes((value.bit_length() + 8) // 8, "big"))


def sk_sign(private, message: bytes, application: bytes = b"ssh:", flags: int = 0x01,
            counter: int = 7) -> tuple[str, str]:
    """An SSHSIG from a FIDO key, per PROTOCOL.u2f, made with a software key: (public line, armored)."""
    data = signatures.signed_data(message, NS, "sha512")
    to_sign = hashlib.sha256(application).digest() + bytes([flags]) + struct.pack(">I", counter) + \
        hashlib.sha256(data).digest()
    if isinstance(private, ed25519.Ed25519PrivateKey):
        kind = "sk-ssh-ed25519@openssh.com"
        raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        blob = _s(kind) + _s(raw) + _s(application)
        sig = _s(private.sign(to_sign))
    else:
        kind = "sk-ecdsa-sha2-nistp256@openssh.com"
        point = private.public_key().public_bytes(serialization.Encoding.X962,
                                                  serialization.PublicFormat.UncompressedPoint)
        blob = _s(kind) + _s("nistp256") + _s(point) + _s(application)
        r, s = decode_dss_signature(private.sign(to_sign, ec.ECDSA(signatures.hashes.SHA256())))
        sig = _s(_mpint(r) + _mpint(s))
    field = _s(kind) + sig + bytes([flags]) + struct.pack(">I", counter)
    armored = signatures.armor(signatures.MAGIC + struct.pack(">I", 1) + _s(blob) + _s(NS) + _s(b"")
                               + _s("sha512") + _s(field))
    return signatures.PublicKey(kind, blob).line(), armored


def open_book(required: int = 1, requester: str = "alice", keys: dict[str, list[str]] | None = None):
    book = ApprovalBook()
    book.status = RunStatus(run_id="run-1", runbook="t", state=RunState.AWAITING_APPROVAL, requested_by=requester,
                            subject="x", started_at=NOW)
    step = StepRecord(step_id="s02-firewall.egress_block", change=Change(kind="firewall.egress_block",
                      target="203.0.113.7"), state=StepState.AWAITING_APPROVAL, mode=Mode.APPROVE, started_at=NOW)
    step.change_digest = change_digest(step)
    book.status.steps.append(step)
    policy = GatePolicy(kind="firewall.egress_block", mode=Mode.APPROVE, approvers=Approver(roles=["soc-analyst"]),
                        required_approvals=required, user_roles=ROLES,
                        user_keys=keys if keys is not None else {u: [public_line(u)] for u in ROLES})
    book.open(step, policy)
    return book, step


def receive(book, who: str, at: datetime = NOW, **signing):
    return book.receive(make_decision(who, True, None, "", book.status, issued_at=signing.pop("issued_at", NOW),
                                      **signing), at)


# -- the signature formats --------------------------------------------------------------
def test_ssh_keygen_ed25519_and_ecdsa_signatures_verify_and_ours_verify_in_ssh_keygen(tmp_path):
    keygen = ssh_keygen()
    message = tmp_path / "decision.json"
    message.write_bytes(b'{"decision":"approve"}')
    for kind, bits in (("ed25519", None), ("ecdsa", "256"), ("ecdsa", "384"), ("ecdsa", "521")):
        key = tmp_path / f"id_{kind}{bits or ''}"
        subprocess.run([keygen, "-q", "-t", kind, *(["-b", bits] if bits else []), "-N", "", "-C", "bob@laptop",
                        "-f", str(key)], check=True)
        (tmp_path / "decision.json.sig").unlink(missing_ok=True)
        subprocess.run([keygen, "-Y", "sign", "-n", NS, "-f", str(key), str(message)], check=True,
                       capture_output=True)
        public = key.with_suffix(".pub").read_text()
        theirs = (tmp_path / "decision.json.sig").read_text()
        verified = signatures.verify(theirs, message.read_bytes(), NS, [public])
        listed = subprocess.run([keygen, "-l", "-f", str(key.with_suffix(".pub"))], capture_output=True, text=True)
        assert verified.fingerprint == listed.stdout.split()[1] == signatures.parse_public_key(public).fingerprint
        with pytest.raises(signatures.SignatureError, match="does not match"):
            signatures.verify(theirs, b'{"decision":"deny"}', NS, [public])
        with pytest.raises(signatures.SignatureError, match="namespace"):
            signatures.verify(theirs, message.read_bytes(), "git", [public])

        ours = signatures.sign(signatures.load_private_key(key.read_bytes()), message.read_bytes(), NS)
        (tmp_path / "ours.sig").write_text(ours)
        (tmp_path / "allowed").write_text("bob " + " ".join(public.split()[:2]) + "\n")
        check = subprocess.run([keygen, "-Y", "verify", "-f", str(tmp_path / "allowed"), "-I", "bob", "-n", NS,
                                "-s", str(tmp_path / "ours.sig")], stdin=message.open("rb"), capture_output=True)
        assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("private", [ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())],
                         ids=["sk-ssh-ed25519", "sk-ecdsa-nistp256"])
def test_fido_sk_signatures_per_protocol_u2f_verify(private):
    line, armored = sk_sign(private, b"the document")
    key = signatures.parse_public_key(line + " bob@yubikey")
    assert key.kind.startswith("sk-") and key.comment == "bob@yubikey"
    assert signatures.verify(armored, b"the document", NS, [line]).fingerprint == key.fingerprint
    with pytest.raises(signatures.SignatureError, match="does not match"):
        signatures.verify(armored, b"another document", NS, [line])
    _, other_app = sk_sign(private, b"the document", application=b"ssh:other")
    with pytest.raises(signatures.SignatureError):  # the application is part of the key: another key
        signatures.verify(other_app, b"the document", NS, [line])
    _, absent = sk_sign(private, b"the document", flags=0x00)
    with pytest.raises(signatures.SignatureError, match="user presence"):
        signatures.verify(absent, b"the document", NS, [line])


def test_hostile_keys_and_signatures_are_one_sentence_errors():
    for line in ("", "ssh-rsa AAAAB3Nza", "ssh-ed25519 !!!", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==",
                 "ecdsa-sha2-nistp256 " + public_line("bob").split()[1]):
        with pytest.raises(signatures.SignatureError):
            signatures.parse_public_key(line)
    for armored in ("", "x" * 20000, "-----BEGIN SSH SIGNATURE-----\n!!\n-----END SSH SIGNATURE-----",
                    signatures.armor(b"SSHSIG\x00\x00\x00\x01\xff\xff\xff\xff")):
        with pytest.raises(signatures.SignatureError):
            signatures.parse_signature(armored)


def test_policy_keys_are_checked_and_one_key_is_one_person():
    policy = parse_policy(f'[users]\nbob = {{ roles = ["r"], keys = ["{public_line("bob")}"] }}\n')
    assert policy.gate_policy("x").user_keys == {"bob": [public_line("bob")]}
    with pytest.raises(PolicyError, match="users.bob.keys"):
        parse_policy('[users]\nbob = { roles = ["r"], keys = ["ssh-ed25519 nope"] }\n')
    with pytest.raises(PolicyError, match="one key, one person"):
        bob = public_line("bob")
        parse_policy(f'[users]\nbob = {{ keys = ["{bob}"] }}\neve = {{ keys = ["{bob}"] }}\n')


# -- the rules --------------------------------------------------------------------------
def test_a_signed_decision_from_a_listed_key_counts_with_its_fingerprint():
    book, step = open_book()
    record = receive(book, "bob")
    assert record.accepted and record.signer_fingerprint == signatures.parse_public_key(public_line("bob")).fingerprint
    assert book.decided(step)
    [(event, _, data)] = book.take_events()
    assert event == "decision.accepted" and data["decision"]["signature"].startswith("-----BEGIN SSH SIGNATURE")


def test_forged_name_wrong_key_and_keyless_user_are_rejected():
    book, step = open_book()
    forged = receive(book, "bob", key=TEST_KEYS["erin"])  # erin signs a document naming bob
    assert not forged.accepted and "belongs to erin, not bob" in forged.why
    stranger = receive(book, "bob", key=ed25519.Ed25519PrivateKey.generate())
    assert not stranger.accepted and "is not bob's key in the policy" in stranger.why
    book, step = open_book(keys={"alice": [public_line("alice")]})
    assert receive(book, "bob").why == "no key for bob in the policy"
    assert not book.decided(step) and len(book.status.rejected_decisions) == 1


def test_another_step_another_digest_another_run_are_rejected():
    book, step = open_book()
    assert receive(book, "bob", digest="sha256:" + "0" * 64).why.startswith("the signature approves change sha256:0000")
    other = book.receive(make_decision("bob", True, "s01-dns.sinkhole", "", book.status, issued_at=NOW), NOW)
    assert other.why == "the signature is for step s01-dns.sinkhole, this run waits on s02-firewall.egress_block"
    assert "the signature is for run run-0" in receive(book, "bob", run_id="run-0").why
    assert not book.decided(step)


def test_replayed_expired_and_future_decisions_are_rejected():
    book, step = open_book(required=2)
    first = make_decision("bob", True, None, "", book.status, issued_at=NOW)
    assert book.receive(first, NOW).accepted
    assert book.receive(first, NOW).why == "this signed decision was already used in this run (replay)"
    late = receive(book, "erin", issued_at=NOW - timedelta(minutes=18), valid_for=timedelta(minutes=15))
    assert late.why == "this decision expired 3 minutes ago"
    ahead = receive(book, "erin", issued_at=NOW + timedelta(hours=1), valid_for=timedelta(minutes=15))
    assert "in the future" in ahead.why
    assert "at most 24 hours" in receive(book, "erin", valid_for=timedelta(days=2)).why
    assert not book.decided(step)


def test_unsigned_or_tampered_signals_are_rejected():
    book, step = open_book()
    raw = book.receive(Decision(id="raw", approver="bob", approve=True), NOW)
    assert raw.why.startswith("this decision is not signed")
    assert "not signed" in book.receive(Decision(), NOW).why  # a bare `{}` from the temporal CLI
    good = make_decision("bob", True, None, "", book.status, issued_at=NOW)
    swapped = good.model_copy(update={"approve": False, "reason": "x"})
    assert "do not match" in book.receive(swapped, NOW).why
    doc = DecisionDocument.model_validate_json(good.document).model_copy(update={"decision": "deny", "reason": "no"})
    tampered = signed_decision(doc, good.signature)
    assert "does not match the signed document" in book.receive(tampered, NOW).why
    huge = Decision(id="h", approver="bob", approve=True, document="x" * 100_000, signature="y")
    record = book.receive(huge, NOW)
    assert "too large" in record.why and record.decision.document == ""
    assert not book.decided(step)


def test_requester_signing_with_their_own_key_is_refused_and_n_of_m_counts_signers():
    book, step = open_book(required=2, requester="alice")
    assert "separation of duties" in receive(book, "alice").why
    assert receive(book, "bob").accepted
    assert "already decided" in receive(book, "bob").why  # a second signature by bob counts once
    assert not book.decided(step)
    assert receive(book, "erin").accepted and book.close(step).deciders == ["bob", "erin"]


def test_ecdsa_key_file_signs_a_decision_that_counts():
    private = ec.generate_private_key(ec.SECP384R1())
    line = signatures.public_key_of(private).line()
    book, step = open_book(keys={"bob": [line]})
    document = DecisionDocument(run_id="run-1", step_id=step.step_id, change_digest=step.change_digest,
                                decision="approve", signer="bob", issued_at=NOW,
                                not_after=NOW + timedelta(minutes=15), nonce="n1")
    pem = signatures.private_key_file(private)
    assert book.receive(sign_decision(signatures.load_private_key(pem), document), NOW).accepted
