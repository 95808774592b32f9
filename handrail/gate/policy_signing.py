"""Policy under the same rule: an edit of the policy counts only when enough policy admins signed it.

A hand edit of `policy.toml` (or `handrail trust set`) used to take effect at the next step
with no trace. With `[policy_admins]` in the policy, the file must carry SSH signatures
(namespace `handrail-policy`, in `policy.toml.sig`, one armored block per signer) by
`required` distinct admins — judged by the *last signed* policy, so nobody can add their
own key and sign their own promotion. The worker keeps that last signed policy under
HANDRAIL_HOME (`policy.trusted.toml`) and runs on it; an unsigned or under-signed edit is
refused with one sentence, audited and raised as a P1 alert instead of silently applied.

    [policy_admins]
    roles = ["soc-lead"]        # and/or users = [...]
    required = 1                # distinct admins who must sign each edit (e.g. 2 of N)

The first signed policy is trusted on its own admins' signatures (trust on first use);
without `[policy_admins]` and with no signed policy kept, the policy is unsigned as before.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from handrail.gate import signatures
from handrail.gate.policy import Policy, PolicyError, parse_policy

POLICY_NAMESPACE = "handrail-policy"
TRUSTED_FILE = "policy.trusted.toml"
_BLOCK = re.compile(re.escape(signatures.BEGIN) + r".*?" + re.escape(signatures.END), re.S)


def signature_path(policy_path: Path) -> Path:
    return Path(policy_path).with_name(Path(policy_path).name + ".sig")


def trusted_path(home: Path) -> Path:
    return Path(home) / TRUSTED_FILE


def content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def armored_blocks(text: str) -> list[str]:
    return _BLOCK.findall(text or "")[:64]  # a signature file is a few blocks; never parse thousands


def _describe(judge: Policy) -> str:
    admins = judge.policy_admins
    parts = [f"role {r}" for r in admins.roles] + [f"user {u}" for u in admins.users]
    return f"{admins.required} of {', '.join(parts) or 'nobody'}"


def admin_signers(data: bytes, signature_text: str, judge: Policy) -> list[str]:
    """The distinct policy admins of `judge` whose valid signatures over `data` the text carries."""
    admins = judge.policy_admins
    if admins is None:
        return []
    eligible = {name for name, user in judge.users.items()
                if name in admins.users or set(user.roles) & set(admins.roles)}
    found: set[str] = set()
    for block in armored_blocks(signature_text):
        try:
            sig = signatures.verify(block, data, POLICY_NAMESPACE)
        except signatures.SignatureError:
            continue
        for name in eligible:
            if any(signatures.parse_public_key(line).blob == sig.public_key for line in judge.users[name].keys):
                found.add(name)
    return sorted(found)


def refusal(data: bytes, signature_text: str, judge: Policy, source: str) -> str | None:
    """Why the policy bytes are not signed well enough by `judge`'s admins, or None."""
    if judge.policy_admins is None:
        return f"{source} is not signed: the last signed policy names no policy_admins who could sign it"
    signers = admin_signers(data, signature_text, judge)
    if len(signers) >= judge.policy_admins.required:
        return None
    have = ", ".join(signers) or "none"
    return (f"{source} is not signed by enough policy_admins ({_describe(judge)} needed; valid signatures: {have}); "
            "sign it with `handrail policy sign`")


@dataclass
class PolicyRefusal:
    digest: str
    why: str


class PolicyKeeper:
    """The worker's view of the policy: the file if it is signed well enough, else the last signed one."""

    def __init__(self, home: Path):
        self.home = Path(home)
        self.refused: PolicyRefusal | None = None  # the edit being refused right now, if any

    def load(self, path: Path) -> Policy:
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise PolicyError(f"Policy file {path} does not exist (set HANDRAIL_POLICY).") from None
        except OSError as exc:
            raise PolicyError(f"Policy file {path} cannot be read: {exc.strerror}.") from None
        kept = trusted_path(self.home)
        trusted_bytes = kept.read_bytes() if kept.exists() else None
        if trusted_bytes is not None and trusted_bytes == data:
            self.refused = None
            return parse_policy(data.decode("utf-8"), source=str(path))
        try:
            policy = parse_policy(data.decode("utf-8", errors="replace"), source=str(path))
        except PolicyError as exc:
            if trusted_bytes is None:
                raise
            return self._fall_back(data, trusted_bytes, str(exc).rstrip("."))
        if trusted_bytes is None and policy.policy_admins is None:
            self.refused = None
            return policy  # unsigned mode: no admins named, nothing signed kept
        judge = parse_policy(trusted_bytes.decode("utf-8"), str(kept)) if trusted_bytes is not None else policy
        sig = signature_path(path)
        signature_text = sig.read_text(encoding="utf-8", errors="replace") if sig.exists() else ""
        why = refusal(data, signature_text, judge, str(path))
        if why is None:
            self._keep(data, signature_text)
            self.refused = None
            return policy
        if trusted_bytes is None:
            raise PolicyError(why + "; there is no earlier signed policy to run on.")
        return self._fall_back(data, trusted_bytes, why)

    def _fall_back(self, data: bytes, trusted_bytes: bytes, why: str) -> Policy:
        self.refused = PolicyRefusal(content_digest(data), why)
        return parse_policy(trusted_bytes.decode("utf-8"), str(trusted_path(self.home)))

    def _keep(self, data: bytes, signature_text: str) -> None:
        """Write the newly signed policy as the one to fall back on (atomically, with its signatures)."""
        self.home.mkdir(parents=True, exist_ok=True)
        for target, content in ((signature_path(trusted_path(self.home)), signature_text.encode()),
                                (trusted_path(self.home), data)):
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(content)
            os.replace(tmp, target)


def diff(home: Path, path: Path) -> dict:
    """What the policy file would change against the last signed policy (text and meaning)."""
    kept = trusted_path(home)
    new_text = Path(path).read_text(encoding="utf-8")
    old_text = kept.read_text(encoding="utf-8") if kept.exists() else ""
    lines = list(difflib.unified_diff(old_text.splitlines(), new_text.splitlines(),
                                      fromfile=str(kept) if kept.exists() else "(no signed policy yet)",
                                      tofile=str(path), lineterm=""))
    out: dict = {"signed_policy": str(kept) if kept.exists() else None, "file": str(path),
                 "changed": bool(lines), "diff": lines}
    try:
        new = parse_policy(new_text, str(path))
    except PolicyError as exc:
        out["error"] = str(exc)
        return out
    old = parse_policy(old_text, str(kept)) if kept.exists() else None
    if old is not None:
        kinds = sorted(set(old.actions) | set(new.actions))
        out["modes"] = {k: [old.gate_policy(k).mode.value, new.gate_policy(k).mode.value] for k in kinds
                        if old.gate_policy(k).mode != new.gate_policy(k).mode}
        out["users_added"] = sorted(set(new.users) - set(old.users))
        out["users_removed"] = sorted(set(old.users) - set(new.users))
        out["keys_changed"] = sorted(u for u in set(old.users) & set(new.users)
                                     if old.users[u].keys != new.users[u].keys)
        out["roles_changed"] = sorted(u for u in set(old.users) & set(new.users)
                                      if old.users[u].roles != new.users[u].roles)
        out["admins_changed"] = old.policy_admins != new.policy_admins
    return out
