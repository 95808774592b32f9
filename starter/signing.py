"""Signing on the analyst's side: find the key, prove who you are, sign the document.

Which key signs, first found wins: `--key PATH`, `HANDRAIL_SIGNING_KEY`, then the key
`handrail keys init` made for the user under `HANDRAIL_HOME/keys/`. A private key file
(ed25519 or ECDSA, unencrypted) signs in-process; a public key file (`….pub`) or an
encrypted private key signs through `ssh-keygen -Y sign`, which asks ssh-agent or the
hardware key (FIDO `sk-` keys) — the private key never has to be readable by Handrail.

The signer's identity comes from the key: the policy user who lists it. `--as YOU` is
only a check ("your key belongs to bob, not carol").
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from handrail.gate import signatures
from handrail.gate.policy import PolicyError, load_policy
from handrail.ops.config import Settings
from handrail.shown import one_line
from starter.output import USAGE, fail


def keys_dir(settings: Settings) -> Path:
    return settings.home / "keys"


def default_key_path(settings: Settings, user: str) -> Path:
    return keys_dir(settings) / f"{user}_ed25519"


@dataclass
class Signer:
    """A key that can sign, and the policy user it belongs to."""

    path: Path
    public: signatures.PublicKey
    user: str
    private: object | None = None  # None: sign through ssh-keygen (agent or hardware key)

    def sign(self, message: bytes, namespace: str) -> str:
        if self.private is not None:
            return signatures.sign(self.private, message, namespace)
        return _ssh_keygen_sign(self.path, message, namespace)


def find_key(settings: Settings, explicit: Path | None, claimed: str | None) -> Path:
    if explicit is not None:
        path = Path(explicit).expanduser()
    elif os.environ.get("HANDRAIL_SIGNING_KEY"):
        path = Path(os.environ["HANDRAIL_SIGNING_KEY"]).expanduser()
    else:
        who = claimed or settings.user
        path = default_key_path(settings, who)
        if not path.exists():  # say whose key was looked for where: --as/--requested-by, else the OS user
            fail(f"No signing key for {who} (looked for {path}): give --key PATH, set HANDRAIL_SIGNING_KEY, or "
                 f"create one with `handrail keys init --user {who}`.", USAGE)
    if not path.is_file():
        fail(f"The signing key {path} is not a file.", USAGE)
    return path


def load_signer(settings: Settings, explicit: Path | None = None, claimed: str | None = None) -> Signer:
    """The key to sign with, and whose it is according to the policy; `claimed` (--as) must agree."""
    path = find_key(settings, explicit, claimed)
    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"The signing key {path} cannot be read ({exc.strerror}).")
    private = None
    if path.suffix == ".pub" or data.lstrip().startswith(tuple(k.encode() for k in signatures.KEY_TYPES)):
        try:
            public = signatures.parse_public_key(data.decode(errors="replace"))
        except signatures.SignatureError as exc:
            fail(f"The public key {path} is unusable: {exc}.")
    else:
        try:
            private = signatures.load_private_key(data)
            public = signatures.public_key_of(private)
        except signatures.SignatureError as exc:
            pub = path.with_name(path.name + ".pub")
            if "encrypted" in str(exc) and pub.is_file():  # let ssh-agent sign with it
                return load_signer(settings, pub, claimed)
            fail(f"The signing key {path} is unusable: {exc}.")
    owner = key_owner(settings, public)
    if owner is None:
        fail(f"Your key {public.fingerprint} is not listed for any user in the policy "
             f"({settings.policy_path}); add it with the line `handrail keys init` prints.")
    if claimed and claimed != owner:
        fail(f"Your key belongs to {owner}, not {claimed}.")
    return Signer(path=path, public=public, user=owner, private=private)


def key_owner(settings: Settings, public: signatures.PublicKey) -> str | None:
    try:
        policy = load_policy(settings.policy_path)
    except PolicyError as exc:
        fail(str(exc))
    for name, user in policy.users.items():
        for line in user.keys:
            if signatures.parse_public_key(line).blob == public.blob:
                return name
    return None


def _ssh_keygen_sign(public_path: Path, message: bytes, namespace: str) -> str:
    """Sign through `ssh-keygen -Y sign -f KEY.pub`: ssh-agent or a FIDO key does the signing."""
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        fail("Signing with ssh-agent or a hardware key needs ssh-keygen (openssh-client), which is not installed.")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "decision"
        target.write_bytes(message)
        proc = subprocess.run([keygen, "-Y", "sign", "-n", namespace, "-f", str(public_path), str(target)],
                              capture_output=True, text=True, timeout=120)
        sig = target.with_name("decision.sig")
        if proc.returncode != 0 or not sig.is_file():
            detail = (proc.stderr.strip().splitlines() or ["no signature made"])[-1]
            fail(f"ssh-keygen could not sign with {public_path}: {detail}.")
        return sig.read_text()


def choose_step(status, run_id: str, step: str | None, kinds=None):
    """The step a decision is for: the one named by `--step`, else the first waiting one.

    `status` is what `handrail show` reads (live, or rebuilt from the ledger when no worker
    answers), so a decision is signed over the same change digest the approver was shown.
    `kinds`: every action kind a step can change (default: the registry's), to tell a step id
    that can never exist from one that may still open.
    """
    steps = list(status.steps if status else [])
    waiting = [s for s in steps if s.state.value == "awaiting_approval"]
    if step:
        chosen = next((s for s in waiting if s.step_id == step), None)
        if chosen is None:
            opened = next((s for s in steps if s.step_id == step), None)
            if opened is not None:
                fail(f"Step {one_line(step)} is {opened.state.value}, not waiting; "
                     + (f"run {one_line(run_id)} waits on {', '.join(s.step_id for s in waiting)}."
                        if waiting else f"run {one_line(run_id)} waits on no step."))
            fail(no_such_step(status, run_id, step, kinds))
        return chosen
    if not waiting:
        fail(f"Run {one_line(run_id)} waits on no step; there is nothing to decide.")
    return waiting[0]


_STEP_ID = re.compile(r"^s(\d{2,})-(.+)$")  # workflows/gate.py names the Nth step of a run `sNN-KIND`
_LISTED = 8  # steps named in the sentence; `handrail show RUN` lists them all
_LIVE = ("running", "awaiting_approval", "waiting_for_tool")


def no_such_step(status, run_id: str, step: str, kinds=None) -> str:
    """Why `--step` names no step of the run waiting now: a step the run has not and never will
    (it ended; its step N is another; the id is no `sNN-KIND`; KIND is no action kind), or one
    that may still open (steps open as the run reaches them), with the run's steps as they are."""
    if kinds is None:
        from handrail.actions import action_kinds

        kinds = action_kinds()
    steps = list(status.steps if status else [])
    state = status.state.value if status is not None and hasattr(status.state, "value") else str(
        getattr(status, "state", ""))
    name, run = one_line(step), one_line(run_id)
    parsed = _STEP_ID.match(step)
    if state not in _LIVE:
        never = f"it has ended ({state}), so no step will open"
    elif parsed is None:
        never = "a step id is sNN-KIND, like s01-firewall.egress_block"
    elif parsed.group(2) not in kinds:
        never = f"{one_line(parsed.group(2))} is not an action kind"
    elif 0 < int(parsed.group(1)) <= len(steps):
        never = f"its step {int(parsed.group(1))} is {steps[int(parsed.group(1)) - 1].step_id}"
    elif int(parsed.group(1)) == 0:
        never = "steps count from s01"
    else:
        never = ""
    listed = ", ".join(f"{s.step_id} ({s.state.value})" for s in steps[:_LISTED])
    more = f" and {len(steps) - _LISTED} more" if len(steps) > _LISTED else ""
    waiting = ", ".join(s.step_id for s in steps if s.state.value == "awaiting_approval")
    if never:
        its = f"Its steps: {listed}{more}." if steps else "It has no steps."
        then = (f"Leave out --step to decide the waiting one ({waiting}), or see each with `handrail show {run}`."
                if waiting else f"None waits now; see each with `handrail show {run}`.")
        return f"Run {run} has no step {name} ({never}). {its} {then}"
    its = f"Its steps so far: {listed}{more}." if steps else "It has opened none so far."
    waits = f"It waits on {waiting}." if waiting else "None waits now."
    return (f"No step {name} is open in run {run} yet, so there is no change digest to sign: steps open as the "
            f"run reaches them. {its} {waits} Decide it once `handrail show {run}` lists it as waiting.")
