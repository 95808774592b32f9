"""`handrail baseline`, `handrail trust advise|set` and `handrail review`: the path to trust.

Mounted by starter/cli.py:
    app.command("baseline")(baseline)
    app.add_typer(trust_app, name="trust")
    app.command("review")(review)
Every command takes --json (then prints exactly one JSON document); errors are one
sentence on stderr (exit 1 refused or failed, 2 usage), never a traceback.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from handrail.ops.config import load_settings
from handrail.shown import YOU
from starter.output import USAGE, command, console, fail, print_json, shown
from starter.tables import print_rows

# The ledger, the policy and the trust modules are imported by the commands that use them:
# building the CLI must not pay for them.
if TYPE_CHECKING:
    from handrail.gate.ledger import Ledger
    from handrail.gate.policy import Policy
    from handrail.trust.baseline import Baseline
    from handrail.trust.report import Line

JSON = typer.Option(False, "--json", help="Print one JSON document and nothing else.")
KIND = typer.Option(None, "--kind", help="Only this action kind (repeatable).")
HTML = typer.Option(None, "--html", help="Also write a self-contained HTML report here.")
_RELATIVE = re.compile(r"^\s*\d+(\.\d+)?\s*[smhdw]\s*$")

trust_app = typer.Typer(help="The trust ladder: advice from the baseline, and changing a kind's mode.",
                        no_args_is_help=True)


def _now() -> datetime:
    return datetime.now(UTC)


def parse_since(value: str | None, now: datetime) -> datetime | None:
    """'2026-10-01', '2026-10-01T12:00', an ISO-8601 time with zone, or '7d' / '12h' ago."""
    from handrail.gate.policy import parse_duration

    if value is None:
        return None
    if _RELATIVE.match(value):
        return now - timedelta(seconds=parse_duration(value.strip()))
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        fail(f"--since {value!r} is not a date (use e.g. 2026-10-01, 2026-10-01T12:00Z or 7d).", USAGE)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _existing_ledger(settings) -> Ledger:
    from handrail.gate.ledger import open_ledger

    if not settings.ledger_on_postgres and not settings.ledger_path.exists():
        fail(f"There is no ledger at {settings.ledger_path} yet: nothing has run here (or set HANDRAIL_HOME).")
    return open_ledger(settings)


# -- baseline -----------------------------------------------------------------------------------
def thresholds_for(ledger: Ledger, policy: Policy, kind: str, now: datetime) -> list[dict[str, Any]]:
    """The thresholds in force for a kind: derived from the baseline, or the static option."""
    from handrail.trust.baseline import derive_threshold

    out = []
    for options in policy.guardrails_for(kind):
        if options["type"] == "rate_limit":
            static = float(options.get("per_hour", 100))
        elif options["type"] == "per_run_limit":
            static = float(options.get("per_run", 20))
        else:
            continue
        derived = derive_threshold(ledger, kind, options, now)
        value, source = derived if derived else (static, "static")
        out.append({"guardrail": options["type"], "value": value, "source": source, "static": static,
                    "derived": derived is not None and not source.startswith("static")})
    return out


def _chart_lines(fig, thresholds: list[dict[str, Any]]) -> tuple[list[Line], list[str]]:
    from handrail.trust.report import Line

    lines = [Line(fig.hourly.p99, f"p99 {fig.hourly.p99:g}/h", "p99")] if fig.changes else []
    notes = []
    for t in thresholds:
        if t["guardrail"] != "rate_limit":
            notes.append(f"per_run_limit {t['value']:g} ({t['source']}); p99 per run {fig.per_run.p99:g}")
            continue
        css = "threshold" if t["derived"] else "static"
        lines.append(Line(t["value"], f"rate_limit {t['value']:g}/h ({'derived' if t['derived'] else 'static'})", css))
        notes.append(f"rate_limit {t['value']:g} per hour — {t['source']}")
    return lines, notes


def build_report(ledger: Ledger, policy: Policy, now: datetime, since: datetime | None,
                 kinds: list[str] | None) -> tuple[Baseline, dict[str, Any]]:
    from handrail.trust.baseline import compute_baseline

    figures = compute_baseline(ledger, now, since, kinds)
    extra = {
        fig.kind: {"mode": policy.gate_policy(fig.kind).mode.value, "pinned": policy.gate_policy(fig.kind).pinned,
                   "thresholds": thresholds_for(ledger, policy, fig.kind, now)}
        for fig in figures.kinds
    }
    return figures, extra


def write_html(path: Path, figures: Baseline, extra: dict[str, Any]) -> None:
    from handrail.trust.report import render

    lines, notes = {}, {}
    for fig in figures.kinds:
        lines[fig.kind], notes[fig.kind] = _chart_lines(fig, extra[fig.kind]["thresholds"])
    page = render(figures, modes={k: v["mode"] for k, v in extra.items()}, lines=lines, notes=notes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")


@command
def baseline(
    kind: list[str] | None = KIND,
    since: str | None = typer.Option(None, "--since", help="From this date or time (UTC), or e.g. 30d ago."),
    html: Path | None = HTML,
    as_json: bool = JSON,
):
    """Per action kind: change rates, batch sizes, approvals, guardrail verdicts, rollbacks, overrides."""
    from handrail.gate.policy import load_policy

    settings = load_settings()
    now = _now()
    start = parse_since(since, now)
    policy = load_policy(settings.policy_path)
    ledger = _existing_ledger(settings)
    if kind:
        from handrail.trust.advice import known_kinds

        known = known_kinds(ledger, policy)
        for name in kind:
            if name not in known:  # a typo must not read as "nothing happened on this kind"
                fail(f"--kind {name[:60]!r} is neither an action kind in the policy nor one the ledger has seen; "
                     f"use one of: {', '.join(known)}.", USAGE)
    figures, extra = build_report(ledger, policy, now, start, kind or None)
    if html is not None:
        write_html(html, figures, extra)
    if as_json:
        doc = figures.model_dump(mode="json")
        for item in doc["kinds"]:
            item.update(extra[item["kind"]])
        doc["html"] = str(html) if html else None
        print_json(doc)
        return
    if not figures.kinds:
        console.print("The ledger has no changes in this period.")
    headers = ("kind", "mode", "changes", "per hour mean/p95/p99/max", "per day mean/p95/p99/max",
               "per run p95/max", "approvals ok/deny/timeout", "latency p50/p95 s", "guardrails hold/deny",
               "rollback/expiry", "overrides", "thresholds")
    rows = []
    for fig in figures.kinds:
        h, d, a = fig.hourly, fig.daily, fig.approvals
        rows.append((
            shown(fig.kind), shown(extra[fig.kind]["mode"]), str(fig.changes),
            f"{h.mean:.2f}/{h.p95:g}/{h.p99:g}/{h.max:g}", f"{d.mean:.1f}/{d.p95:g}/{d.p99:g}/{d.max:g}",
            f"{fig.per_run.p95:g}/{fig.per_run.max:g}", f"{a.approved}/{a.denied}/{a.timeouts}",
            f"{a.latency_s.p50:g}/{a.latency_s.p95:g}", f"{fig.guardrails.held}/{fig.guardrails.denied}",
            f"{fig.rollbacks}/{fig.expiries}", str(fig.overrides),
            "\n".join(f"{shown(t['guardrail'])} {t['value']:g} ({shown(t['source'])})"
                      for t in extra[fig.kind]["thresholds"]),
        ))
    print_rows(console, headers, rows)
    console.print(f"Computed in {figures.elapsed_s:.2f}s." + (f" HTML report: {html}" if html else ""))


# -- trust ----------------------------------------------------------------------------------
@trust_app.command("advise")
@command
def advise(as_json: bool = JSON):
    """For each action kind: its mode, the evidence, and whether to promote, keep or demote it."""
    from handrail.gate.policy import load_policy
    from handrail.trust.advice import advise as advise_kinds
    from handrail.trust.advice import trust_settings

    settings = load_settings()
    policy = load_policy(settings.policy_path)
    rules = trust_settings(policy)
    ledger = _existing_ledger(settings)
    advice = advise_kinds(ledger, policy, _now())
    if as_json:
        print_json({"settings": rules.model_dump(), "kinds": [a.model_dump(mode="json") for a in advice]})
        return
    headers = ("kind", "mode", "suggestion", "days", "changes", "rollbacks", "overrides", "denied", "why")
    colour = {"promote": "green", "demote": "red", "keep": "white"}
    rows = []
    for a in advice:
        ev = a.evidence
        rows.append((
            shown(a.kind), a.mode.value + (" (pinned)" if a.pinned else ""),
            f"[{colour[a.suggestion]}]{a.suggestion}" + (f" → {a.to.value}" if a.to else "") + "[/]",
            f"{ev.days:g}", str(ev.changes), str(ev.rollbacks), str(ev.overrides),
            f"{ev.approvals.denied}/{ev.approvals.approved + ev.approvals.denied}", shown(a.why),
        ))
    print_rows(console, headers, rows)
    console.print("Change a mode with: handrail trust set KIND MODE --as USER --reason \"...\"")


@trust_app.command("set")
@command
def set_(
    kind: str = typer.Argument(..., help="The action kind, e.g. dns.sinkhole."),
    mode: str = typer.Argument(..., help="approve, logged or guarded."),
    as_: str | None = typer.Option(None, "--as", help="Who changes it: checked against your signing key's owner "
                                   "in the policy. Required."),
    reason: str | None = typer.Option(None, "--reason", help="Why (kept in the audit). Required."),
    key: Path | None = typer.Option(None, "--key", help="Signing key (as for `handrail approve`)."),
    as_json: bool = JSON,
):
    """Change a kind's trust mode in the policy file (in place, comments kept) and audit it, signed.

    Only someone who may approve the kind (or a policy admin, with [policy_admins]) may."""
    from handrail.gate.ledger import open_ledger
    from handrail.trust.advice import set_mode
    from starter.signing import load_signer

    if not as_:
        fail("--as is required: say who changes the trust mode (your signing key must be theirs).", USAGE)
    if not reason or not reason.strip():
        fail("--reason is required: say why the trust mode changes (it is kept in the audit).", USAGE)
    settings = load_settings()
    signer = load_signer(settings, key, as_)  # the key says who; --as only checks
    ledger = open_ledger(settings)
    result = set_mode(settings.policy_path, ledger, kind, mode, signer.user, reason, _now(),
                      sign=_signing_with(signer))
    from starter.policy_cmd import signing_status

    signing = signing_status(settings.home, settings.policy_path)
    pending = signing["required"] and not signing["ok"]  # under [policy_admins]: not in force until signed
    if as_json:
        print_json({**result.model_dump(mode="json", by_alias=True), "in_force": not pending,
                    **({"why_not_in_force": signing["why"]} if pending else {})})
    elif result.changed and pending:
        console.print(f"{kind} is [bold]{result.to.value}[/] (was {result.from_mode.value}) in {result.policy} and the "
                      "change is audited, but [yellow]not in force yet[/]: the workers keep running the last signed "
                      f"policy until enough policy_admins sign this one ({shown(signing['why'].rstrip('.'))}). "
                      f"Sign it: handrail policy sign --as {YOU}", highlight=False)
    elif result.changed:
        console.print(f"[green]{kind}[/] is now [bold]{result.to.value}[/] (was {result.from_mode.value}); "
                      f"{result.policy} updated and the change audited.")
    else:
        console.print(f"{kind} already is {result.to.value}; nothing changed.")


def _signing_with(signer):
    """A trust act's statement signed with the analyst's key (namespace handrail-trust)."""
    from handrail.trust.attest import NAMESPACE

    return lambda message: signer.sign(message, NAMESPACE)


# -- review ---------------------------------------------------------------------------------
@command
def review(
    since: str | None = typer.Option(None, "--since", help="From this date or time instead of the last review."),
    mark_: bool = typer.Option(False, "--mark", help="Record that the listed changes were reviewed."),
    as_: str | None = typer.Option(None, "--as", help="Who reviewed, with --mark: checked against your signing "
                                   "key's owner in the policy."),
    key: Path | None = typer.Option(None, "--key", help="Signing key for --mark (as for `handrail approve`)."),
    as_json: bool = JSON,
):
    """The automated (logged and guarded) changes since the last review; --mark records the review, signed."""
    from handrail.gate.policy import load_policy
    from handrail.trust.review import mark, pending
    from starter.signing import load_signer

    if mark_ and not as_:
        fail("--mark needs --as: say who reviewed the changes (your signing key must be theirs).", USAGE)
    settings = load_settings()
    now = _now()
    start = parse_since(since, now)
    ledger = _existing_ledger(settings)
    marked_id = None
    if mark_:
        signer = load_signer(settings, key, as_)
        listing, marked_id = mark(ledger, load_policy(settings.policy_path), signer.user, now, start,
                                  sign=_signing_with(signer))
    else:
        listing = pending(ledger, now, start)
    if as_json:
        print_json({**listing.model_dump(mode="json"), "marked": marked_id is not None, "audit_id": marked_id})
        return
    previous = listing.last_review
    console.print(
        (f"Last review by {shown(previous.by)} at {previous.at:%Y-%m-%d %H:%M}Z. " if previous else "No review yet. ")
        + f"{len(listing.changes)} automated change(s) since "
        + (f"{listing.since:%Y-%m-%d %H:%M}Z" if listing.since else "the start of the ledger") + "."
    )
    if listing.changes:
        print_rows(console, ("applied", "kind", "target", "mode", "status", "run", "undone"),
                   [(f"{c.applied_at:%Y-%m-%d %H:%M}", shown(c.kind), shown(review_target(c, ledger, settings)),
                     shown(c.mode), shown(c.status or ""), shown(c.run_id), shown(c.reverted or ""))
                    for c in listing.changes],
                   key=5)
    if marked_id:
        console.print(f"[green]Marked reviewed[/] by {as_}: {len(listing.changes)} change(s) (audit {marked_id}).")


def review_target(item, ledger, settings, first: int = 5) -> str:
    """A reviewed change's target as a reviewer reads it: a batch (`set:<sha256>`) is how many
    entries and the first of them, not a hash (`handrail show RUN --members` lists them all)."""
    if not item.target.startswith("set:"):
        return item.target
    from handrail.gate.models import Change
    from starter.batch_view import batch_members

    record = ledger.change(item.change_id)
    members = batch_members(record.change if record else Change(kind=item.kind, target=item.target), settings)
    if members is None:
        return item.target
    more = f" and {len(members) - first} more" if len(members) > first else ""
    return (f"{len(members)} entries: {', '.join(members[:first])}{more} "
            f"(all: handrail show {item.run_id} --members)")


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    """Mount `handrail baseline`, `handrail trust …` and `handrail review` (starter/cli.py COMMAND_MODULES)."""
    app.command("baseline")(baseline)
    app.command("review")(review)
    app.add_typer(trust_app, name="trust")

