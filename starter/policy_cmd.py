"""`handrail policy sign|diff`: policy edits count once enough policy admins signed them.

    handrail policy diff [FILE]                 what the file changes against the last signed policy
    handrail policy sign [--as YOU] [--key K]   add your signature (namespace handrail-policy) to FILE.sig

With `[policy_admins]` in the policy, the worker runs the file only when `required` admins
of the last signed policy have signed exactly its bytes; until then it keeps the last signed
policy and raises a P1 alert (handrail.gate.policy_signing).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer

from starter.output import command, console, fail, print_json

JSON = typer.Option(False, "--json", help="Print one JSON document and nothing else.")


def signing_status(home: Path, path: Path) -> dict:
    """Whether the worker would run this file: unsigned mode, signed well enough, or refused (and why)."""
    from handrail.gate.policy import parse_policy
    from handrail.gate.policy_signing import admin_signers, refusal, signature_path, trusted_path

    data = Path(path).read_bytes()
    kept = trusted_path(home)
    policy = parse_policy(data.decode("utf-8", errors="replace"), str(path))
    if not kept.exists() and policy.policy_admins is None:
        return {"required": False, "ok": True, "why": "no policy_admins: the policy is not signed"}
    if kept.exists() and kept.read_bytes() == data:
        return {"required": True, "ok": True, "why": "this is the signed policy in force"}
    judge = parse_policy(kept.read_text(encoding="utf-8"), str(kept)) if kept.exists() else policy
    sig = signature_path(path)
    text = sig.read_text(encoding="utf-8", errors="replace") if sig.exists() else ""
    why = refusal(data, text, judge, str(path))
    return {"required": True, "ok": why is None, "why": why or "signed by enough policy_admins",
            "signers": admin_signers(data, text, judge)}


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    from starter import common

    policy_app = common.group_of(app, "policy")

    @policy_app.command("diff")
    @command
    def policy_diff(
        file: Optional[Path] = typer.Argument(None, help="Policy file (default HANDRAIL_POLICY or ./policy.toml)."),
        as_json: bool = JSON,
    ):
        """Show what the policy file would change against the last signed policy, before anyone signs it."""
        from handrail.gate.policy_signing import diff

        settings = common._settings()
        path = file or settings.policy_path
        if not Path(path).is_file():
            fail(f"Policy file {path} does not exist.")
        result = diff(settings.home, path)
        result["signing"] = signing_status(settings.home, path) if "error" not in result else None
        if as_json:
            print_json(result)
            return
        if result["signed_policy"] is None:
            console.print("No signed policy is kept yet: the whole file is new.")
        for line in result["diff"]:
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else None
            console.print(line, style=style, highlight=False, markup=False)
        for kind, (old, new) in result.get("modes", {}).items():
            console.print(f"mode of {kind}: {old} -> {new}")
        for label in ("users_added", "users_removed", "keys_changed", "roles_changed"):
            if result.get(label):
                console.print(f"{label.replace('_', ' ')}: {', '.join(result[label])}")
        if result.get("signing"):
            console.print(f"signing: {result['signing']['why']}")

    @policy_app.command("sign")
    @command
    def policy_sign(
        file: Optional[Path] = typer.Argument(None, help="Policy file (default HANDRAIL_POLICY or ./policy.toml)."),
        as_: Optional[str] = typer.Option(None, "--as", help="Who signs (checked against your key's owner)."),
        key: Optional[Path] = typer.Option(None, "--key", help="Signing key (default HANDRAIL_SIGNING_KEY)."),
        as_json: bool = JSON,
    ):
        """Sign the policy file's exact bytes as a policy admin (appends to FILE.sig)."""
        from handrail.gate import signatures
        from handrail.gate.policy import PolicyError, parse_policy
        from handrail.gate.policy_signing import POLICY_NAMESPACE, armored_blocks, signature_path
        from starter.signing import load_signer

        settings = common._settings()
        path = file or settings.policy_path
        try:
            data = Path(path).read_bytes()
            parse_policy(data.decode("utf-8", errors="replace"), str(path))
        except OSError as exc:
            fail(f"Policy file {path} cannot be read ({exc.strerror}).")
        except PolicyError as exc:
            fail(str(exc))
        signer = load_signer(dataclasses.replace(settings, policy_path=Path(path)), key, as_)
        sig = signature_path(path)
        old = sig.read_text(encoding="utf-8", errors="replace") if sig.exists() else ""
        kept = []
        for block in armored_blocks(old):  # signatures over an older text no longer mean anything
            try:
                if signatures.verify(block, data, POLICY_NAMESPACE).public_key != signer.public.blob:
                    kept.append(block)
            except signatures.SignatureError:
                continue
        kept.append(signer.sign(data, POLICY_NAMESPACE).strip())
        sig.write_text("\n".join(kept) + "\n", encoding="utf-8")
        status = signing_status(settings.home, path)
        doc = {"file": str(path), "signature_file": str(sig), "signed_by": signer.user,
               "signatures": len(kept), **status}
        if as_json:
            print_json(doc)
        else:
            console.print(f"Signed {path} as {signer.user} ({len(kept)} signature(s)): {status['why']}.")
