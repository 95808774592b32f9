"""`handrail keys init|list`: the SSH keys decisions are signed with.

    handrail keys init [--user bob] [--key ~/.ssh/id_ed25519.pub]   create (or pick) a key, print the policy line
    handrail keys list                                              each policy user's keys and fingerprints

A decision counts only when it is signed with a key the policy lists for its signer, so
the first step for an approver is one line in `policy.toml`:
`bob = { roles = ["soc-analyst"], keys = ["ssh-ed25519 AAAA… bob@laptop"] }`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from starter.output import USAGE, CliError, command, console, fail, print_json

if TYPE_CHECKING:
    from handrail.gate import signatures

keys_app = typer.Typer(help="Signing keys: create one, list the policy's keys.", no_args_is_help=True)
JSON = typer.Option(False, "--json", help="Print one JSON document and nothing else.")


def create_key(path: Path, comment: str) -> signatures.PublicKey:
    """A new ed25519 key file (0600) with its .pub beside it, as `ssh-keygen -t ed25519` writes them."""
    from handrail.gate import signatures

    path.parent.mkdir(parents=True, exist_ok=True)
    private = signatures.new_ed25519_key()
    path.write_bytes(signatures.private_key_file(private))
    path.chmod(0o600)
    public = signatures.public_key_of(private, comment)
    path.with_name(path.name + ".pub").write_text(public.line() + "\n")
    return public


def read_public(path: Path) -> signatures.PublicKey:
    from handrail.gate import signatures

    pub = path if path.suffix == ".pub" else path.with_name(path.name + ".pub")
    try:
        if pub.is_file():
            return signatures.parse_public_key(pub.read_text())
        return signatures.public_key_of(signatures.load_private_key(path.read_bytes()))
    except OSError as exc:
        fail(f"{path} cannot be read ({exc.strerror}).", USAGE)
    except signatures.SignatureError as exc:
        fail(f"{path} is not a usable key: {exc}.", USAGE)


def policy_line(user: str, roles: list[str], keys: list[str]) -> str:
    quoted = ", ".join(f'"{r}"' for r in roles)
    key_list = ", ".join(f'"{k}"' for k in keys)
    return f"{user} = {{ roles = [{quoted}], keys = [{key_list}] }}"


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    from starter import common

    app.add_typer(keys_app, name="keys")

    @keys_app.command("init")
    @command
    def keys_init(
        user: Optional[str] = typer.Option(None, "--user",
                                           help="The policy user the key is for (default HANDRAIL_USER)."),
        key: Optional[Path] = typer.Option(None, "--key", help="Use this existing key (private or .pub) instead of "
                                           "creating one; ssh-agent and FIDO keys work through their .pub."),
        as_json: bool = JSON,
    ):
        """Create a signing key under HANDRAIL_HOME/keys (or pick yours) and print the line for the policy."""
        from handrail.gate import signatures
        from handrail.gate.policy import PolicyError, load_policy
        from starter.signing import default_key_path

        settings = common._settings()
        name = user or settings.user
        if key is not None:
            path, created = Path(key).expanduser(), False
            if not path.is_file():
                fail(f"--key {path} is not a file.", USAGE)
            public = read_public(path)
        else:
            path = default_key_path(settings, name)
            created = not path.exists()
            public = create_key(path, f"{name}@handrail") if created else read_public(path)
        roles: list[str] = []
        listed = known = False
        try:
            policy = load_policy(settings.policy_path)
            spec = policy.users.get(name)
            known = spec is not None
            if spec is not None:
                roles = list(spec.roles)
                listed = any(signatures.parse_public_key(k).blob == public.blob for k in spec.keys)
                keys = list(spec.keys) + ([] if listed else [public.line()])
            else:
                keys = [public.line()]
        except PolicyError:
            keys = [public.line()]
        line = policy_line(name, roles, keys)
        result = {"user": name, "key": str(path), "created": created, "public_key": public.line(),
                  "fingerprint": public.fingerprint, "listed_in_policy": listed, "policy_line": line}
        if as_json:
            print_json(result)
            return
        from starter.output import shown

        who = shown(name)
        console.print(f"{'Created' if created else 'Using'} {shown(path)} ({public.fingerprint}).", highlight=False,
                      soft_wrap=True)
        if listed:
            console.print(f"The policy already lists this key for {who}.", highlight=False)
        else:  # a second `name = …` line would be a TOML error: say to replace the one there
            where = (f"Replace {who}'s line under \\[users] in {shown(settings.policy_path)} with:" if known else
                     f"Add this line under \\[users] in {shown(settings.policy_path)}:")
            console.print(where, highlight=False, soft_wrap=True)
            console.print(shown(line), highlight=False, soft_wrap=True)
            if not roles:
                console.print(f"(and give {who} a role, or name them, where an action's approvers are listed: "
                              "a user no action names decides nothing)", highlight=False, soft_wrap=True)
        # a key where `--as` looks for it needs no --key
        signs = f"--as {who}" if path == default_key_path(settings, name) else f"--key {shown(path)}"
        console.print(f"Then sign decisions with: handrail approve RUN {signs}", highlight=False, soft_wrap=True)

    @keys_app.command("list")
    @command
    def keys_list(as_json: bool = JSON):
        """Each policy user's keys (type, fingerprint, comment), and which of them have a key file here."""
        from handrail.gate import signatures
        from handrail.gate.policy import PolicyError, load_policy
        from starter.signing import keys_dir

        settings = common._settings()
        try:
            policy = load_policy(settings.policy_path)
        except PolicyError as exc:
            fail(str(exc))
        local = {}
        folder = keys_dir(settings)
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if not path.is_file() or path.stat().st_size > 65536:
                    continue
                try:
                    if path.suffix == ".pub":
                        public = signatures.parse_public_key(path.read_text())
                    else:
                        public = read_public(path)
                    local.setdefault(public.blob, str(path.with_suffix("") if path.suffix == ".pub" else path))
                except (OSError, signatures.SignatureError, CliError):
                    continue
        rows = []
        for name, spec in policy.users.items():
            if not spec.keys:
                rows.append({"user": name, "roles": spec.roles, "type": None, "fingerprint": None,
                             "comment": "no key: this user cannot sign decisions", "local_key": None})
            for line in spec.keys:
                key = signatures.parse_public_key(line)
                rows.append({"user": name, "roles": spec.roles, "type": key.kind, "fingerprint": key.fingerprint,
                             "comment": key.comment, "local_key": local.get(key.blob)})
        if as_json:
            print_json({"policy": str(settings.policy_path), "keys": rows})
            return
        from starter.output import shown
        from starter.tables import print_rows

        # records when the table does not fit: a fingerprint is compared whole, never cut to "SHA256:eBE…"
        print_rows(console, ("user", "roles", "type", "fingerprint", "comment", "key file here"), [
            (shown(r["user"]), shown(", ".join(r["roles"])), shown(r["type"] or "-"), shown(r["fingerprint"] or "-"),
             shown(r["comment"]), shown(r["local_key"] or "")) for r in rows])


def demo_policy(settings, source: Path) -> Path:
    """`make demo`: a key for every policy user under HANDRAIL_HOME/keys, and a copy of the
    policy listing them (HANDRAIL_HOME/demo-policy.toml), so the demo approves with one command.
    The shipped policy itself never carries demo keys."""
    import re

    from handrail.gate.policy import load_policy
    from starter.signing import default_key_path

    text = source.read_text(encoding="utf-8")
    policy = load_policy(source)

    def with_key(match: re.Match) -> str:
        name = match.group(1)
        if name not in policy.users:
            return match.group(0)
        path = default_key_path(settings, name)
        public = read_public(path) if path.exists() else create_key(path, f"{name}@handrail-demo")
        return policy_line(name, list(policy.users[name].roles), [public.line()])

    out = re.sub(r"^([A-Za-z0-9_.-]+) = \{ roles = \[[^\]]*\] \}[ \t]*$", with_key, text, flags=re.M)
    target = settings.home / "demo-policy.toml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(out, encoding="utf-8")
    load_policy(target)  # the copy must still be a valid policy
    return target
