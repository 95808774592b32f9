"""Data exfiltration response: the models, the policy settings and the classification.

A DLP alert is classified by `classify()`, a pure function of the rules in the policy
file (`[settings.exfiltration]`), the alert and the user's history in the ledger. It runs
inside the workflow on data an activity returned, so replay and audit agree on why an
alert was called `inadvertent` or `malicious`. An alert no rule covers goes to an analyst
(the gate's approval of the `exfiltration.classify_malicious` decision).

    [settings.exfiltration]
    training_module = "data-handling"
    on_unclassified_timeout = "malicious"      # what an unanswered analyst question means
    max_follow_ups = 10                        # proliferation: follow-up runs per run
    monitoring_ttl = "7d"                      # raised EDR telemetry goes back after this
    history_days = 90                          # how far back the user's history is read
    rules = [
      { channel = "email", detector = "account_numbers", severity = ["low", "medium"], max_matches = 20,
        max_prior_alerts = 2, verdict = "inadvertent" },
      { channel = "gateway", detector = "encrypted_archive", verdict = "malicious" },
      { destination = ["partner.example"], verdict = "inadvertent" },   # the recipient's domain (or under it)
    ]

Rules are tried in order; the first whose every condition holds decides. A condition left
out matches anything. The analyst question's timeout is the approval timeout of
`[actions."exfiltration.classify_malicious"]`: it is the gate's approval, not a second one.
"""

from __future__ import annotations

import re
from email.utils import getaddresses, parseaddr
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from handrail.gate.canon import canonical_domain, exact_host
from handrail.gate.limits import Principal, ToolId
from handrail.gate.policy import parse_duration

Verdict = Literal["inadvertent", "malicious"]
RuleVerdict = Literal["inadvertent", "malicious", "analyst"]
ALERT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
CLASSIFY_KIND = "exfiltration.classify_malicious"
RUNBOOK = "exfiltration"


# -- settings (validated from the policy file) ----------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rule(_Strict):
    """One classification rule; list-valued conditions match any of their values."""

    verdict: RuleVerdict
    why: str = ""
    channel: str | list[str] | None = None
    detector: str | list[str] | None = None
    severity: str | list[str] | None = None
    destination: str | list[str] | None = None  # domains: the recipient's or site's domain is one or under one
    internal: bool | None = None  # the destination is (true) or is not (false) under one of own_domains
    min_matches: int | None = Field(default=None, ge=0)  # how many sensitive items the DLP matched
    max_matches: int | None = Field(default=None, ge=0)
    min_prior_alerts: int | None = Field(default=None, ge=0)
    max_prior_alerts: int | None = Field(default=None, ge=0)
    prior_malicious: bool | None = None

    def describe(self) -> str:
        if self.why:
            return self.why
        parts = [f"{name}={value}" for name in ("channel", "detector", "severity", "destination", "internal",
                                                "min_matches", "max_matches", "min_prior_alerts",
                                                "max_prior_alerts", "prior_malicious")
                 if (value := getattr(self, name)) is not None]
        return " and ".join(parts) or "any alert"


class ExfilSettings(_Strict):
    rules: list[Rule] = Field(default_factory=list)
    own_domains: list[str] = Field(default_factory=list)  # the company's own mail and web domains
    training_module: str = "data-handling"
    on_unclassified_timeout: Verdict = "malicious"
    max_follow_ups: int = Field(default=10, ge=0)
    monitoring_level: Literal["elevated", "verbose"] = "verbose"
    monitoring_ttl: str | None = "7d"
    history_days: float = Field(default=90, gt=0)
    question_timeout: Any = None  # rejected below with a pointer to the right place

    @field_validator("monitoring_ttl")
    @classmethod
    def _ttl(cls, value):
        if value:
            parse_duration(value)
        return value or None

    @field_validator("own_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        for entry in value:
            if exact_host(entry) != entry or ":" in entry:
                raise ValueError(f"own_domains: {entry[:80]!r} is not a lower-case domain name of two or more labels")
        return value

    @model_validator(mode="after")
    def _internal_needs_domains(self) -> "ExfilSettings":
        if not self.own_domains and any(rule.internal is not None for rule in self.rules):
            raise ValueError("a rule uses `internal`, but own_domains names none of the company's domains")
        return self

    @model_validator(mode="after")
    def _no_second_timeout(self) -> "ExfilSettings":
        if self.question_timeout is not None:
            raise ValueError(
                "question_timeout: the analyst question is the gate's approval, so set approval_timeout "
                f'in [actions."{CLASSIFY_KIND}"] instead'
            )
        return self

    def monitoring_ttl_s(self) -> float | None:
        return parse_duration(self.monitoring_ttl) if self.monitoring_ttl else None


class SettingsError(ValueError):
    """`[settings.exfiltration]` cannot be used; the message is one sentence."""


def parse_settings(settings: dict[str, Any] | None) -> ExfilSettings:
    raw = (settings or {}).get("exfiltration", {})
    if not isinstance(raw, dict):
        raise SettingsError("policy settings.exfiltration must be a table.")
    try:
        return ExfilSettings.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise SettingsError(f"policy settings.exfiltration{'.' + where if where else ''}: {msg}.") from None


def check_policy(policy) -> ExfilSettings:
    """Validate the settings and the classify action they rely on (used by the intake activity)."""
    settings = parse_settings(policy.settings)
    gate = policy.gate_policy(CLASSIFY_KIND)
    if gate.on_timeout != "deny":
        raise SettingsError(
            f'actions."{CLASSIFY_KIND}".on_timeout must stay "deny": an unanswered question is decided by '
            "settings.exfiltration.on_unclassified_timeout, never recorded as an approval."
        )
    return settings


# -- what crosses the workflow boundary -----------------------------------------------------
class ExfiltrationTrigger(BaseModel):
    alert_id: ToolId
    requested_by: Principal = "dlp-poller"


class FollowUpTrigger(BaseModel):
    """A device found by proliferation search: scanned and contained in a run of its own."""

    host: str  # built in workflow code from tool data: no limit here may fail a workflow task
    parent_run: str
    parent_alert: str
    case_id: str | None = None
    indicators: list[str] = Field(default_factory=list)
    requested_by: Principal = "dlp-poller"


class DlpPoll(BaseModel):
    requested_by: str = "dlp-poller"
    limit: int = 200


class AlertFacts(BaseModel):
    id: str
    user: str
    host: str
    channel: str
    detector: str
    severity: str = ""
    file_name: str = ""
    destination: str = ""
    match_count: int = 0


class History(BaseModel):
    """The user's earlier classified DLP alerts in the ledger (this run excluded)."""

    prior_alerts: int = 0
    prior_malicious: int = 0
    prior_alert_ids: list[str] = Field(default_factory=list)


class IntakeRequest(BaseModel):
    alert_id: str
    run_id: str


class Intake(BaseModel):
    alert: AlertFacts | None = None
    problems: list[str] = Field(default_factory=list)
    host_tags: list[str] = Field(default_factory=list)
    history: History = Field(default_factory=History)
    settings: ExfilSettings = Field(default_factory=ExfilSettings)


class Classification(BaseModel):
    verdict: RuleVerdict
    rule: int | None = None  # index of the rule that decided, None when none matched
    why: str


class HostRequest(BaseModel):
    host: str
    run_id: str
    case_id: str | None = None
    key: str = ""


class HostFacts(BaseModel):
    host: str
    known: bool
    problem: str = ""
    owner: str | None = None
    tags: list[str] = Field(default_factory=list)


class ScanFacts(BaseModel):
    host: str
    verdict: Literal["clean", "compromised"]
    indicators: list[str] = Field(default_factory=list)


class Evidence(BaseModel):
    host: str
    memory: str
    disk: str


class SpreadRequest(BaseModel):
    indicators: list[str]
    exclude: list[str] = Field(default_factory=list)
    case_id: str | None = None
    key: str


class SimilarHost(BaseModel):
    hostname: str
    owner: str | None = None
    indicators: list[str] = Field(default_factory=list)


class Spread(BaseModel):
    indicators_searched: int
    hosts: list[SimilarHost] = Field(default_factory=list)


# -- the pure part ----------------------------------------------------------------------------
def _matches(condition: str | list[str] | None, value: str) -> bool:
    if condition is None:
        return True
    values = [condition] if isinstance(condition, str) else condition
    return value.lower() in {v.lower() for v in values} or "*" in values


def destination_domain(destination: str) -> str:
    """The domain an alert's data went to: an address's domain or a URL's host, lower case,
    read strictly; "" when the destination is neither (a USB device) or could be read as
    another host than the one shown (``https://evil.example\\@partner.example/``,
    ``a@partner.example@evil.example``) or names recipients in more than one domain
    (``me@corp.example, x@evil.example``): the user chose the destination, so a rule that
    trusts a domain must not be fooled by its spelling. Data only: nothing is resolved."""
    text = destination.strip()
    if "://" in text:
        if "\\" in text:
            return ""  # browsers read a backslash as a slash, Python's parser does not
        try:
            host = urlsplit(text).hostname or ""
        except ValueError:
            return ""
    elif "@" in text:
        hosts = destination_domains(text)
        return hosts[0] if len(hosts) == 1 else ""  # several recipients' domains: no one domain
    else:
        return ""
    return exact_host(canonical_domain(host)) or ""


def destination_domains(destination: str) -> list[str]:
    """Every recipient's domain of an address destination (``me@corp.example, x@evil.example``),
    distinct, in order; [""] when any of them cannot be read (so nothing trusts it). A URL or
    anything else: its one :func:`destination_domain`."""
    text = destination.strip()
    if "://" in text or "@" not in text:
        return [destination_domain(text)]
    hosts = [_address_host(address) for _, address in getaddresses([text]) if address]
    if not hosts or "" in hosts:
        return [""]
    return list(dict.fromkeys(hosts))


def _address_host(address: str) -> str:
    """The domain of one address, "" when its local part could hide another (``a@b@c``)."""
    local, _, host = address.rpartition("@")
    if not local or ("@" in local and not (local.startswith('"') and local.endswith('"'))):
        return ""
    return exact_host(canonical_domain(host)) or ""


def is_internal(destination: str, own_domains: list[str]) -> bool:
    """Whether the data stayed inside: its destination's domain — every recipient's — is one of
    the company's own domains or under one (``[settings.exfiltration] own_domains``)."""
    return all(_under(domain, own_domains) for domain in destination_domains(destination))


def _under(domain: str, entries: list[str]) -> bool:
    return bool(domain) and any(domain == e.lower() or domain.endswith("." + e.lower()) for e in entries)


def classify(rules: list[Rule], alert: AlertFacts, history: History,
             own_domains: list[str] | None = None) -> Classification:
    """First matching rule wins; no match means an analyst decides."""
    domains = destination_domains(alert.destination)
    return _first_rule(rules, alert, history, domains, own_domains or []) or _ask(
        alert, history, destination_domain(alert.destination) or alert.destination.strip()[:80])


def _first_rule(rules: list[Rule], alert: AlertFacts, history: History, domains: list[str],
                own_domains: list[str]) -> Classification | None:
    """The first rule whose every condition holds; `domains` are the destination's, as read
    (a rule on the destination, or `internal`, trusts every one of them or none)."""
    for i, rule in enumerate(rules):
        if not (_matches(rule.channel, alert.channel) and _matches(rule.detector, alert.detector)
                and _matches(rule.severity, alert.severity) and _goes_to(rule.destination, domains)):
            continue
        if rule.internal is not None and all(_under(d, own_domains) for d in domains) != rule.internal:
            continue
        if rule.min_matches is not None and alert.match_count < rule.min_matches:
            continue
        if rule.max_matches is not None and alert.match_count > rule.max_matches:
            continue
        if rule.min_prior_alerts is not None and history.prior_alerts < rule.min_prior_alerts:
            continue
        if rule.max_prior_alerts is not None and history.prior_alerts > rule.max_prior_alerts:
            continue
        if rule.prior_malicious is not None and (history.prior_malicious > 0) != rule.prior_malicious:
            continue
        return Classification(verdict=rule.verdict, rule=i, why=f"rule {i + 1}: {rule.describe()}")
    return None


def _goes_to(condition: str | list[str] | None, domains: list[str]) -> bool:
    if condition is None:
        return True
    listed = [condition] if isinstance(condition, str) else condition
    return "*" in listed or all(_under(domain, listed) for domain in domains)


def _ask(alert: AlertFacts, history: History, to: str) -> Classification:
    """No rule matched: the analyst question. Its sentence is the question's `why_asked`, which
    the change digest an analyst signs covers: it must read the same when the run replays."""
    return Classification(
        verdict="analyst", why=f"no rule matches channel={alert.channel}, detector={alert.detector}, "
        f"severity={alert.severity or 'unknown'}, {alert.match_count} match(es) to "
        f"{to or 'an unknown destination'} with {history.prior_alerts} prior alert(s) of this user",
    )


# -- runs begun before the strict reading ------------------------------------------------------
# `classify` runs in workflow code, so a run classifies again each time it is replayed, and
# must come to what it came to when it ran: another verdict is other commands (a question it
# never asked, training it never gave), and another question sentence is another change
# digest, which refuses the analyst's signed answer in its history. Either fails the run as
# nondeterministic. Runs begun before `handrail-dlp-strict-destination` (workflows/exfiltration.py)
# are therefore classified as the release that began them classified; which release that was
# shows in the settings its intake recorded in the run's history (every field is recorded,
# so a field its release did not have is absent): `own_domains` from 839c4e5 on, a rule's
# `destination` from 745235d on, neither before (3ae8ef3).


def loose_destination_domain(destination: str) -> str:
    """The destination's domain as 745235d read it (for runs it began): an address's domain (the
    last ``@``), a URL's host as split by hand, else the text itself, lower case. Superseded:
    ``https://evil.example\\@partner.example/`` and ``drop@evil.example, me@partner.example``
    both read as partner.example."""
    text = destination.strip().lower()
    if "://" in text:
        text = text.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0]
    elif "@" in text:
        text = text.rsplit("@", 1)[1]
    return text.rstrip(".>")


def first_address_domain(destination: str) -> str:
    """The destination's domain as 839c4e5 read it (for runs it began): strictly, like
    :func:`destination_domain`, but of the first address only. Superseded: in
    ``me@corp.example, drop@evil.example`` the first address decided that the data stayed inside."""
    text = destination.strip()
    if "://" in text or "@" not in text:
        return destination_domain(text)
    return _address_host(parseaddr(text)[1])


def classify_as_begun(settings: ExfilSettings, alert: AlertFacts, history: History) -> Classification:
    """How the release that began a run classified it, for runs begun before
    `handrail-dlp-strict-destination` (see above): read from the settings its intake recorded."""
    rules = settings.rules
    if "own_domains" in settings.model_fields_set:  # 839c4e5 to 8b0d5ab: strict, the first address
        domain = first_address_domain(alert.destination)
        return _first_rule(rules, alert, history, [domain], settings.own_domains) or _ask(
            alert, history, domain or alert.destination.strip()[:80])
    if any("destination" in rule.model_fields_set for rule in rules):  # 745235d to 839c4e5: loose
        domain = loose_destination_domain(alert.destination)
        return _first_rule(rules, alert, history, [domain], []) or _ask(alert, history, domain)
    # 3ae8ef3: no rule could name a destination or a count, and the question said less
    return _first_rule(rules, alert, history, [""], []) or Classification(
        verdict="analyst", why=f"no rule matches channel={alert.channel}, detector={alert.detector} "
        f"with {history.prior_alerts} prior alert(s) of this user")


def follow_up_id(parent_alert: str, host: str) -> str:
    return f"exfiltration-{parent_alert}-follow-up-{host}"


def run_id_for(alert_id: str) -> str:
    return f"exfiltration-{alert_id}"


def alert_id_problem(alert_id: str) -> str | None:
    if not ALERT_ID.match(alert_id or ""):
        return f"{alert_id!r} is not a DLP alert id (letters, digits, '.', '_', ':' or '-')"
    return None
