"""Every `handrail` invocation imports starter.cli first, so it must stay cheap to import.

Building the typer app needs typer, rich and the commands' signatures; Temporal's SDK, the
workflows and activities, the runbooks (lookalike tables, tldextract), numpy and the tool
clients are imported inside the commands that use them. Measured on the dev machine: about
650 ms to import starter.cli with them, about 150 ms without. A heavy import at the top of a
command module (or of something it imports at module level) fails here; move it into the
command function, or into a helper that command calls.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]

# Never imported just to build the CLI: package prefixes (a name or any of its submodules).
HEAVY = (
    "numpy",
    "confusable_homoglyphs",
    "tldextract",
    "workflows",
    "activities",
    "handrail.runbooks.phishing.lookalike",
    "temporalio",  # any part of the SDK: the package itself loads the native bridge (70-130 ms)
    "httpx",
    "structlog",
    "handrail.tools",
    "handrail.intel",
)

# Every command and group `handrail` has (captured before the imports were moved).
COMMANDS = {
    "approve", "audit", "audit export", "audit verify", "baseline", "bench", "bench baseline", "bench chaos",
    "bench intel", "bench parse", "bench runbooks", "bench signatures", "codec-server", "demo", "deny", "down",
    "drift", "keys", "keys init", "keys list", "lab", "lab faults", "lab list", "lab reset", "lab state", "ledger",
    "ledger migrate", "pending", "phishing", "phishing evidence", "phishing triage", "policy", "policy check",
    "policy diff", "policy sign", "popular", "popular check", "popular refresh", "review", "rollback", "run",
    "run egress-block", "run exfiltration", "run intel-sync", "run phishing", "run privilege-guard",
    "run rogue-device", "runs", "schedule", "show", "status", "tools", "tools check", "trust", "trust advise",
    "trust set", "up",
}


def _is_heavy(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in HEAVY)


def test_importing_the_cli_loads_no_heavy_module():
    proc = subprocess.run([sys.executable, "-c", "import starter.cli, sys; print(sorted(sys.modules))"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    loaded = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    assert "starter.cli" in loaded
    heavy = [m for m in loaded if _is_heavy(m)]
    assert not heavy, f"importing starter.cli loads {heavy}: import them inside the commands that use them"


def _paths(group, prefix=()):
    for name, cmd in getattr(group, "commands", {}).items():
        yield " ".join(prefix + (name,))
        yield from _paths(cmd, prefix + (name,))


def test_every_command_is_still_registered():
    from starter.cli import app

    assert set(_paths(typer.main.get_command(app))) == COMMANDS


def test_help_lists_every_top_level_command():
    exe = str(Path(sys.executable).parent / "handrail")
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "COLUMNS": "200", "HANDRAIL_HOME": "/nonexistent-handrail-home"})
    assert proc.returncode == 0, proc.stderr
    panel = proc.stdout.split("Commands", 1)[1]
    listed = set(re.findall(r"^│ ([a-z][a-z0-9-]*)\s{2,}", panel, flags=re.M))
    assert listed == {c for c in COMMANDS if " " not in c}
