"""Trust advice from the known synthetic ledger, `trust set` editing the policy, and reviews."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from handrail.gate import signatures
from handrail.gate.ledger import Ledger, iso
from handrail.gate.models import AuditEvent, Mode
from handrail.gate.policy import PolicyError, load_policy, parse_policy
from handrail.trust import attest
from handrail.trust.advice import TrustError, advise, edit_mode_text, set_mode
from handrail.trust.review import ReviewError, last_review, mark, pending
from handrail.trust.synth import KNOWN_NOW, KNOWN_T0, SyntheticLedger, build_known_ledger
from starter.trust_cmd import baseline, review, trust_app
from tests.support import TEST_KEYS, key_file, with_test_keys

pytestmark = pytest.mark.unit

SHIPPED = Path(__file__).resolve().parents[1] / "policy.toml"

POLICY = """
[users]
alice = { roles = ["soc-analyst"] }
bob = { roles = ["soc-analyst"] }

[actions."firewall.egress_block"]
mode = "approve"

[actions."dns.sinkhole"]
mode = "logged"
guardrails = [{ type = "rate_limit", per_hour = 500 }]

[actions."proxy.block"]
mode = "logged"
guardrails = [{ type = "never_block" }]

[actions."nac.disconnect"]
mode = "guarded"
guardrails = [{ type = "rate_limit", per_hour = 10 }]

[actions."edr.isolate"]
mode = "approve"
pinned = true

[actions."training.enroll"]
mode = "logged"
"""


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    ledger = Ledger(tmp_path_factory.mktemp("trust") / "ledger.db")
    build_known_ledger(ledger)
    yield ledger
    ledger.close()


def suggestions(ledger, policy_text, now=KNOWN_NOW):
    return {a.kind: (a.suggestion, a.to.value if a.to else None)
            for a in advise(ledger, parse_policy(policy_text), now)}


def test_advice_for_the_known_shape(known):
    advice = {a.kind: a for a in advise(known, parse_policy(POLICY), KNOWN_NOW)}
    assert {k: (a.suggestion, a.to.value if a.to else None) for k, a in advice.items()} == {
        "dns.sinkhole": ("promote", "guarded"),
        "firewall.egress_block": ("promote", "logged"),
        "proxy.block": ("keep", None),  # one rollback: not promoted
        "nac.disconnect": ("demote", "logged"),  # 3 overrides in 40 changes = 7.5 % > 5 %
        "edr.isolate": ("keep", None),  # pinned, however clean
        "training.enroll": ("keep", None),  # 5 days of history, and no guardrails for guarded
        "nac.reconnect": ("keep", None),  # not in the policy: default approve, 1 change
    }
    fw = advice["firewall.egress_block"].evidence
    assert (fw.changes, fw.rollbacks, fw.overrides, fw.approvals.denied, fw.deny_rate) == (168, 0, 0, 2, 0.0118)
    assert fw.days == pytest.approx(20.62, abs=0.01)
    assert "1 rollback(s)" in advice["proxy.block"].why and "1 override(s)" in advice["proxy.block"].why
    assert advice["nac.disconnect"].evidence.override_rate == 0.075
    assert "3 of 40 changes" in advice["nac.disconnect"].why
    assert advice["edr.isolate"].pinned and "pinned" in advice["edr.isolate"].why
    assert "of 14 days" in advice["training.enroll"].why and "no guardrails" in advice["training.enroll"].why


def test_promotion_rules_come_from_the_policy(known):
    strict = POLICY + "\n[settings.trust]\npromote_after_days = 30\ndemote_override_rate = 0.1\n"
    got = suggestions(known, strict)
    assert got["dns.sinkhole"] == ("keep", None) and got["firewall.egress_block"] == ("keep", None)
    assert got["nac.disconnect"] == ("keep", None)  # 7.5 % is under 10 %
    picky = POLICY + "\n[settings.trust]\npromote_max_deny_rate = 0.01\n"
    assert suggestions(known, picky)["firewall.egress_block"] == ("keep", None)  # 1.18 % denied
    with pytest.raises(PolicyError, match="settings.trust.promote_after_dayz"):
        advise(known, parse_policy(POLICY + "\n[settings.trust]\npromote_after_dayz = 3\n"), KNOWN_NOW)


def test_evidence_restarts_when_the_mode_changes(tmp_path):
    ledger = Ledger(tmp_path / "l.db")
    build_known_ledger(ledger)
    ledger.append([AuditEvent(id="t1", at=KNOWN_T0 + timedelta(days=15), run_id="trust", event="trust.mode_changed",
                              data={"kind": "dns.sinkhole", "from": "approve", "to": "logged", "by": "alice",
                                    "reason": "r"})])
    [dns] = advise(ledger, parse_policy(POLICY), KNOWN_NOW, kinds=["dns.sinkhole"])
    assert dns.suggestion == "keep" and dns.evidence.changes == 6 * 40 and dns.evidence.since is not None


def test_shipped_policy_pinned_kind_is_never_promoted(known):
    text = SHIPPED.read_text(encoding="utf-8")
    got = suggestions(known, text)
    assert got["edr.isolate"] == ("keep", None)
    assert got["firewall.egress_block"] == ("promote", "logged")


# -- trust set --------------------------------------------------------------------------------
def _copy_shipped(tmp_path) -> Path:
    """The shipped policy, its users given the test keys (a trust act is signed)."""
    path = tmp_path / "policy.toml"
    path.write_text(with_test_keys(SHIPPED.read_text(encoding="utf-8")), encoding="utf-8")
    return path


def signed_by(user: str):
    return lambda message: signatures.sign(TEST_KEYS[user], message, attest.NAMESPACE)


def test_trust_set_changes_only_the_mode_line_of_the_shipped_policy(tmp_path):
    path = _copy_shipped(tmp_path)
    ledger = Ledger(tmp_path / "ledger.db")
    original = path.read_bytes()
    result = set_mode(path, ledger, "firewall.egress_block", "logged", "alice", "3 clean weeks", KNOWN_NOW,
                      sign=signed_by("alice"))
    assert result.changed and result.from_mode == Mode.APPROVE and result.to == Mode.LOGGED
    new = path.read_bytes()
    old_lines, new_lines = original.splitlines(keepends=True), new.splitlines(keepends=True)
    assert len(old_lines) == len(new_lines)
    diff = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert diff == [(b'mode = "approve"\n', b'mode = "logged"\n')]
    i = old_lines.index(diff[0][0], old_lines.index(b'[actions."firewall.egress_block"]\n'))
    assert new == b"".join(old_lines[:i] + [b'mode = "logged"\n'] + old_lines[i + 1:])
    assert load_policy(path).gate_policy("firewall.egress_block").mode == Mode.LOGGED
    [row] = [r for r in ledger.audit_rows() if r["event"] == "trust.mode_changed"]
    signed = row["data"].pop("signed")
    assert row["run_id"] == "trust" and row["data"] == {
        "kind": "firewall.egress_block", "from": "approve", "to": "logged", "by": "alice",
        "reason": "3 clean weeks", "policy": str(path.resolve()), "at": iso(KNOWN_NOW)}
    assert signed["key"] == signatures.public_key_of(TEST_KEYS["alice"]).fingerprint
    assert ledger.verify().ok and attest.verify_acts(ledger.audit_rows()) == (1, [])
    again = set_mode(path, ledger, "firewall.egress_block", "logged", "alice", "again", KNOWN_NOW,
                     sign=signed_by("alice"))
    assert not again.changed and path.read_bytes() == new


@pytest.mark.parametrize(
    "kind, mode, by, fragment",
    [
        ("edr.isolate", "guarded", "alice", "pinned"),
        ("dns.sinkhole", "yolo", "alice", "not a trust mode"),
        ("dns.sinkhole", "guarded", "mallory", "not a user in the policy"),
        ("no.such.kind", "guarded", "alice", "neither an action kind"),
        ("dns.sinkhole", "guarded", "alice", ""),  # the empty reason below
    ],
)
def test_trust_set_refusals_leave_the_file_alone(tmp_path, kind, mode, by, fragment):
    path = _copy_shipped(tmp_path)
    ledger = Ledger(tmp_path / "ledger.db")
    reason = "" if not fragment else "because"
    original = path.read_bytes()
    with pytest.raises(TrustError) as err:
        set_mode(path, ledger, kind, mode, by, reason, KNOWN_NOW, sign=signed_by("alice"))
    assert (fragment or "--reason") in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes() == original
    assert not list(ledger.audit_rows())


def test_trust_set_into_approve_is_validated(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(with_test_keys('[users]\ndave = { roles = [] }\nerin = { roles = ["soc-lead"] }\n\n'
                                   '[policy_admins]\nusers = ["dave"]\n\n[actions."x"]\nmode = "logged"\n'
                                   'approvers = { roles = ["soc-lead"] }\nrequired_approvals = 2\n'),
                    encoding="utf-8")
    with pytest.raises(PolicyError, match="needs 2 approvals"):
        set_mode(path, Ledger(tmp_path / "l.db"), "x", "approve", "dave", "r", KNOWN_NOW, sign=signed_by("dave"))
    assert "logged" in path.read_text()


@pytest.mark.parametrize("by, signer, fragment", [
    ("dave", "dave", "dave may not approve dns.sinkhole changes"),  # in the policy, but no role
    ("alice", "bob", "does not prove alice"),  # bob's key claiming to be alice
])
def test_trust_set_is_refused_to_the_untrusted_and_the_unproven(tmp_path, by, signer, fragment):
    path = _copy_shipped(tmp_path)
    ledger = Ledger(tmp_path / "ledger.db")
    original = path.read_bytes()
    with pytest.raises(TrustError, match=fragment):
        set_mode(path, ledger, "dns.sinkhole", "guarded", by, "because", KNOWN_NOW, sign=signed_by(signer))
    assert path.read_bytes() == original and not list(ledger.audit_rows())


def test_with_policy_admins_only_an_admin_changes_trust(tmp_path):
    path = _copy_shipped(tmp_path)
    path.write_text(path.read_text() + '\n[policy_admins]\nroles = ["soc-lead"]\n', encoding="utf-8")
    ledger = Ledger(tmp_path / "ledger.db")
    with pytest.raises(TrustError, match="alice is not a policy admin"):
        set_mode(path, ledger, "dns.sinkhole", "guarded", "alice", "because", KNOWN_NOW, sign=signed_by("alice"))
    assert set_mode(path, ledger, "dns.sinkhole", "guarded", "carol", "because", KNOWN_NOW,
                    sign=signed_by("carol")).changed


def test_a_tampered_or_unsigned_trust_act_fails_verification(tmp_path):
    path = _copy_shipped(tmp_path)
    ledger = Ledger(tmp_path / "ledger.db")
    set_mode(path, ledger, "dns.sinkhole", "guarded", "carol", "clean weeks", KNOWN_NOW, sign=signed_by("carol"))
    [row] = [r for r in ledger.audit_rows() if r["event"] == "trust.mode_changed"]
    assert attest.verify_event(row["event"], row["data"]) is None
    forged = {**row["data"], "by": "bob"}  # the name in the audit is what the signature covers
    assert "signature" in attest.verify_event(row["event"], forged)
    unsigned = {k: v for k, v in row["data"].items() if k != "signed"}
    assert attest.verify_event(row["event"], unsigned) == "it carries no signature"


def test_edit_mode_text_adds_the_line_or_the_table_and_keeps_comments_and_crlf():
    text = ('# top\r\n[actions."a.b"] # note\r\ndescription = "mode = nope"\r\n\r\n'
            '[actions."c"]\r\nmode = \'guarded\'  # keep\r\n')
    added = edit_mode_text(text, "a.b", "logged")
    assert added == text.replace('# note\r\n', '# note\r\nmode = "logged"\r\n')
    swapped = edit_mode_text(text, "c", "approve")
    assert swapped == text.replace("mode = 'guarded'  # keep", 'mode = "approve"  # keep')
    appended = edit_mode_text("[users]\n", "new.kind", "logged")
    assert appended == '[users]\n\n[actions."new.kind"]\nmode = "logged"\n'
    assert parse_policy(appended).actions["new.kind"].mode == Mode.LOGGED


# -- review -----------------------------------------------------------------------------------
def test_review_lists_automated_changes_since_the_last_mark(tmp_path):
    ledger = Ledger(tmp_path / "l.db")
    policy = parse_policy(with_test_keys(POLICY))
    build_known_ledger(ledger)
    now = KNOWN_NOW
    first = pending(ledger, now, since=KNOWN_T0 + timedelta(days=20))
    kinds = {c.kind for c in first.changes}
    assert kinds == {"dns.sinkhole", "proxy.block", "nac.disconnect", "training.enroll"}  # no approve-mode kinds
    assert len(first.changes) == 40 + 4 + 2 + 20
    everything = pending(ledger, now)
    assert everything.last_review is None and len(everything.changes) == 867 + 84 + 40 + 100
    assert any(c.reverted and c.reverted.startswith("rollback by bob") for c in everything.changes)
    with pytest.raises(ReviewError, match="not a user"):
        mark(ledger, policy, "mallory", now, sign=signed_by("alice"))
    listing, event_id = mark(ledger, policy, "alice", now, sign=signed_by("alice"))
    assert len(listing.changes) == 1091
    review_row = next(r for r in ledger.audit_rows() if r["event"] == "review.marked")
    assert review_row["id"] == event_id and review_row["data"]["by"] == "alice"
    assert review_row["data"]["count"] == 1091 and len(review_row["data"]["change_ids"]) == 1091
    assert last_review(ledger).until == now
    assert pending(ledger, now + timedelta(hours=1)).changes == []
    with SyntheticLedger(ledger) as syn:
        syn.change("dns.sinkhole", now + timedelta(minutes=5), run_id="after", step_id="s01")
        syn.change("firewall.egress_block", now + timedelta(minutes=6), run_id="after", step_id="s02", mode="approve")
    later = pending(ledger, now + timedelta(hours=1))
    assert [c.change_id for c in later.changes] == ["after/s01"] and later.since == now
    assert ledger.verify().ok


def test_a_review_leaves_out_what_a_person_approved_and_nobody_reviews_their_own_runs(tmp_path):
    ledger = Ledger(tmp_path / "l.db")
    policy = parse_policy(with_test_keys(POLICY))
    with SyntheticLedger(ledger) as syn:
        syn.change("dns.sinkhole", KNOWN_NOW, run_id="held", step_id="s01", mode="guarded", approved_by=("alice",))
        syn.change("dns.sinkhole", KNOWN_NOW, run_id="alone", step_id="s01", mode="guarded", requested_by="bob")
    listing = pending(ledger, KNOWN_NOW + timedelta(hours=1))
    assert [c.change_id for c in listing.changes] == ["alone/s01"]  # alice looked at the held one already
    with pytest.raises(ReviewError, match="bob requested runs whose changes this review covers"):
        mark(ledger, policy, "bob", KNOWN_NOW + timedelta(hours=1), sign=signed_by("bob"))
    listing, _ = mark(ledger, policy, "alice", KNOWN_NOW + timedelta(hours=1), sign=signed_by("alice"))
    assert [c.change_id for c in listing.changes] == ["alone/s01"]


# -- the CLI ----------------------------------------------------------------------------------
@pytest.fixture
def cli(tmp_path, monkeypatch):
    home = tmp_path / "home"
    policy = _copy_shipped(tmp_path)
    (home / "keys").mkdir(parents=True)
    for user in TEST_KEYS:
        key_file(user, home / "keys")  # where `handrail keys init` puts a user's key
    monkeypatch.setenv("HANDRAIL_HOME", str(home))
    monkeypatch.setenv("HANDRAIL_POLICY", str(policy))
    monkeypatch.setenv("HANDRAIL_USER", "alice")
    app = typer.Typer()
    app.command("baseline")(baseline)
    app.add_typer(trust_app, name="trust")
    app.command("review")(review)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args)), home, policy


def _recent_history(home: Path) -> None:
    ledger = Ledger(home / "ledger.db")
    now = datetime.now(UTC)
    with SyntheticLedger(ledger) as syn:
        for i in range(30):
            syn.change("dns.sinkhole", now - timedelta(hours=i, minutes=1), run_id=f"r{i}", step_id="s01")
    ledger.close()


def test_cli_commands_print_one_json_document(cli):
    run, home, _ = cli
    missing = run("baseline", "--json")
    assert missing.exit_code == 1 and "no ledger" in json.loads(missing.stdout)["error"]
    _recent_history(home)
    out = run("baseline", "--json", "--kind", "dns.sinkhole", "--since", "2d", "--html", str(home / "b.html"))
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    [dns] = doc["kinds"]
    assert dns["kind"] == "dns.sinkhole" and dns["changes"] == 30 and dns["mode"] == "logged"
    assert dns["thresholds"][0]["guardrail"] == "per_run_limit" and "series" not in dns
    assert (home / "b.html").read_text().count("<svg") == 1
    advice = json.loads(run("trust", "advise", "--json").stdout)
    assert {a["kind"]: a["suggestion"] for a in advice["kinds"]}["dns.sinkhole"] == "keep"
    listing = json.loads(run("review", "--json").stdout)
    assert len(listing["changes"]) == 30 and listing["marked"] is False
    marked = json.loads(run("review", "--mark", "--as", "bob", "--json").stdout)
    assert marked["marked"] and marked["audit_id"].startswith("review:")
    assert json.loads(run("review", "--json").stdout)["changes"] == []


def test_cli_baseline_refuses_a_kind_it_does_not_know(cli):
    """A misspelt --kind is a usage error naming the known kinds, never a row of zeros."""
    run, home, _ = cli
    _recent_history(home)
    typo = run("baseline", "--kind", "dns.sinkhol", "--json")
    assert typo.exit_code == 2, typo.output
    error = json.loads(typo.stdout)["error"]
    assert "'dns.sinkhol' is neither an action kind" in error and "dns.sinkhole" in error
    known = run("baseline", "--kind", "edr.isolate", "--json")  # in the policy, no history yet: a real zero
    assert known.exit_code == 0 and json.loads(known.stdout)["kinds"][0]["changes"] == 0, known.output


def test_cli_trust_set_and_its_errors(cli):
    run, _, policy = cli
    ok = run("trust", "set", "dns.sinkhole", "guarded", "--as", "carol", "--reason", "clean", "--json")
    assert ok.exit_code == 0, ok.output
    assert (json.loads(ok.stdout)["from"] == "logged"
            and load_policy(policy).gate_policy("dns.sinkhole").mode == "guarded")
    pinned = run("trust", "set", "edr.isolate", "logged", "--as", "carol", "--reason", "x")
    assert pinned.exit_code == 1 and "pinned" in pinned.stderr and "Traceback" not in pinned.output
    usage = run("trust", "set", "dns.sinkhole", "logged", "--reason", "x")
    assert usage.exit_code == 2 and "--as is required" in usage.stderr
    bad_since = run("review", "--since", "last tuesday")
    assert bad_since.exit_code == 2 and "not a date" in bad_since.stderr
    no_as = run("review", "--mark")
    assert no_as.exit_code == 2
    # the name after --as is checked against the key, and the key's owner must be trusted with it
    spoofed = run("trust", "set", "dns.sinkhole", "logged", "--as", "carol", "--reason", "x",
                  "--key", str(key_file("dave", policy.parent)))
    assert spoofed.exit_code == 1 and "Your key belongs to dave, not carol" in spoofed.stderr
    untrusted = run("trust", "set", "dns.sinkhole", "logged", "--as", "dave", "--reason", "x")
    assert untrusted.exit_code == 1 and "dave may not approve dns.sinkhole" in untrusted.stderr
    unmarked = run("review", "--mark", "--as", "dave")
    assert unmarked.exit_code == 1 and "may approve no kind of change" in unmarked.stderr
    assert load_policy(policy).gate_policy("dns.sinkhole").mode == "guarded"


def test_no_demotion_without_a_minimum_sample():
    from handrail.gate.models import Mode
    from handrail.trust.advice import Evidence, TrustSettings, judge

    rules = TrustSettings(demote_after_changes=20, demote_after_days=1)
    one_test_rollback = Evidence(days=0.01, changes=3, overrides=1, override_rate=1 / 3)
    kept = judge("dns.sinkhole", Mode.LOGGED, False, True, one_test_rollback, rules)
    assert kept.suggestion == "keep" and "too small a sample" in kept.why
    enough = Evidence(days=3, changes=40, overrides=3, override_rate=3 / 40)
    assert judge("dns.sinkhole", Mode.LOGGED, False, True, enough, rules).suggestion == "demote"


def test_audit_verify_signatures_rechecks_trust_acts(cli):
    from starter.cli import app as full_app

    run, home, _ = cli
    assert run("trust", "set", "dns.sinkhole", "guarded", "--as", "carol", "--reason", "clean").exit_code == 0
    verify = CliRunner().invoke(full_app, ["audit", "verify", "--signatures", "--json"])
    assert verify.exit_code == 0, verify.output
    assert json.loads(verify.stdout)["signatures"]["trust_acts"] == 1
    ledger = Ledger(home / "ledger.db")  # a mode change written by hand, as before acts were signed
    ledger.append([AuditEvent(id="trust:unsigned", at=datetime.now(UTC), run_id="trust", event="trust.mode_changed",
                              data={"kind": "dns.sinkhole", "from": "guarded", "to": "logged", "by": "carol"})])
    ledger.close()
    verify = CliRunner().invoke(full_app, ["audit", "verify", "--signatures", "--json"])
    assert verify.exit_code == 1
    [failure] = json.loads(verify.stdout)["signatures"]["trust_act_failures"]
    assert failure["by"] == "carol" and failure["why"] == "it carries no signature"
