"""The policy file: who may approve what, and which guardrails hold each kind of action.

The policy is TOML (comments survive, people edit it by hand) validated by pydantic, so a
typo is one clear sentence at `handrail policy check` time instead of a surprise in a run.
The workflow never reads the file: an activity hands it the `GatePolicy` slice for one
step, which then lives in the history and keeps replay deterministic.
"""

from __future__ import annotations

import ipaddress
import math
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from handrail.gate.freeze import FreezeWindow
from handrail.gate.models import Approver, GatePolicy, Mode

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, None: 1}

GUARDRAIL_TYPES = {
    "never_block",  # targets overlapping the protected networks: deny + alert
    "no_reserved_space",  # private, loopback, link-local, multicast, reserved: deny
    "never_touch",  # domains or hosts listed in the guardrail (or the policy allowlists): deny
    "canonical_target",  # a name or URL not in its one canonical spelling, or a public suffix: deny
    "popular_domain",  # inside the top-sites cut-off ([settings.popular]), or no readable list: hold
    "confidence",  # the runbook's params["confidence"] is below `at_least` (default high): hold
    "rate_limit",  # more than `per_hour` changes of this kind across runs: hold (blast radius)
    "per_run_limit",  # more than `per_run` changes of this kind in one run: hold
    "protected_tags",  # a target carrying one of `tags` (CMDB): hold
    "max_batch",  # a batch change (set: target) with more than `max` members: hold
}


def _count(value: Any) -> str | None:
    """A limit: a finite number of zero or more (0 holds every change, as a freeze of the kind)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return f"must be a number of zero or more, not {value!r:.40}"
    return None


def _strings(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return "must be a list of strings"
    return None


def _one_of(*choices: Any):
    def check(value: Any) -> str | None:
        return None if value in choices and type(value) is type(choices[0]) else \
            f"must be one of {', '.join(map(repr, choices))}"
    return check


_OPTION_CHECKS = {
    "per_hour": _count, "per_run": _count, "max": _count,
    "at_least": _one_of("low", "medium", "high"),
    "tags": _strings, "values": _strings,
    "allowlist": lambda v: None if isinstance(v, str) else "must name an allowlist",
    "alert": _one_of(True, False), "ip_only": _one_of(True, False),
}

# The options each guardrail reads besides `outcome` and `baseline` (handrail/gate/guardrails.py).
GUARDRAIL_OPTIONS: dict[str, frozenset[str]] = {
    "never_block": frozenset({"ip_only"}),
    "no_reserved_space": frozenset({"ip_only"}),
    "never_touch": frozenset({"allowlist", "values", "alert"}),
    "canonical_target": frozenset(),
    "popular_domain": frozenset(),
    "confidence": frozenset({"at_least"}),
    "rate_limit": frozenset({"per_hour"}),
    "per_run_limit": frozenset({"per_run"}),
    "protected_tags": frozenset({"tags"}),
    "max_batch": frozenset({"max"}),
}


class PolicyError(ValueError):
    """The policy file cannot be used; the message is one sentence naming the problem."""


MAX_DURATION_S = 10 * 366 * 86400.0  # ten years: past that a timer is a typo (and overflows dates)


def parse_duration(value: str | int | float) -> float:
    """'90s', '15m', '4h', '30d', '2w' or a number of seconds -> seconds (at most ten years)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (use e.g. 90s, 15m, 4h, 30d)")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"duration {value!r} is not a finite number of seconds of zero or more")
        seconds = float(value)
    else:
        match = _DURATION.match(str(value)[:40])
        if not match or len(str(value)) > 40:
            raise ValueError(f"{str(value)[:40]!r} is not a duration (use e.g. 90s, 15m, 4h, 30d)")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION_S:
        raise ValueError(f"duration {str(value)[:40]!r} is longer than ten years")
    return seconds


def _checked_duration(value: str | float) -> str | float:
    parse_duration(value)  # raises with the sentence the policy error quotes
    return value


Duration = Annotated[str | float, AfterValidator(_checked_duration)]  # "4h", "30m", seconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserSpec(_Strict):
    roles: list[str] = Field(default_factory=list)
    keys: list[str] = Field(default_factory=list)  # OpenSSH public key lines; decisions are signed with them

    @field_validator("keys")
    @classmethod
    def _valid_keys(cls, value: list[str]) -> list[str]:
        from handrail.gate.signatures import SignatureError, parse_public_key

        for line in value:
            try:
                parse_public_key(line)
            except SignatureError as exc:
                raise ValueError(str(exc)) from None
        return value


class ProtectedNetwork(_Strict):
    name: str
    cidr: str

    @field_validator("cidr")
    @classmethod
    def _valid_cidr(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_network(value, strict=True))
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a network ({exc})") from None


BASELINE_STATS = {  # guardrail type -> the baseline statistics its threshold may use
    "rate_limit": {f"{s}_hourly" for s in ("mean", "p50", "p95", "p99", "max")},
    "per_run_limit": {f"{s}_per_run" for s in ("mean", "p50", "p95", "p99", "max")},
}


class BaselineSpec(_Strict):
    """A threshold derived from the ledger (handrail.trust.baseline.derive_thresholds).

    `stat × factor`, rounded down, never below `floor`; the guardrail's static option
    applies until the kind has `min_days` of history. `window_days` bounds the history read.
    """

    stat: str
    factor: float = Field(default=1.0, gt=0)
    floor: float = Field(default=1.0, ge=0)
    min_days: float = Field(default=14, ge=0)
    window_days: float = Field(default=90.0, gt=0)


class GuardrailSpec(BaseModel):
    """One guardrail; its own options ride along as extra fields."""

    model_config = ConfigDict(extra="allow")
    type: str
    outcome: Literal["deny", "hold"] | None = None
    baseline: BaselineSpec | None = None

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in GUARDRAIL_TYPES:
            known = ", ".join(sorted(GUARDRAIL_TYPES))
            raise ValueError(f"unknown guardrail type {value!r} (known: {known})")
        return value

    @model_validator(mode="after")
    def _options_fit(self) -> GuardrailSpec:
        """Every option is one this guardrail reads, of the type it reads: a typo (`per_hr`)
        or `per_run = nan` would otherwise switch the guardrail off without a word."""
        allowed = GUARDRAIL_OPTIONS.get(self.type, frozenset())
        for name, value in (self.model_extra or {}).items():
            if name not in allowed:
                known = ", ".join(sorted(allowed | {"outcome"})) or "outcome"
                raise ValueError(f"guardrail {self.type!r} has no option {name!r} (its options: {known})")
            problem = _OPTION_CHECKS[name](value)
            if problem:
                raise ValueError(f"guardrail {self.type!r} option {name!r} {problem}")
        return self

    @model_validator(mode="after")
    def _baseline_fits(self) -> GuardrailSpec:
        if self.baseline is None:
            return self
        stats = BASELINE_STATS.get(self.type)
        if stats is None:
            raise ValueError(f"guardrail {self.type!r} has no threshold a baseline could set")
        if self.baseline.stat not in stats:
            raise ValueError(
                f"baseline stat {self.baseline.stat!r} does not fit {self.type!r} "
                f"(use one of {', '.join(sorted(stats))})"
            )
        return self


class ActionSpec(_Strict):
    mode: Mode | None = None
    pinned: bool = False
    approvers: Approver | None = None
    required_approvals: int | None = Field(default=None, ge=1)
    approval_timeout: Duration | None = None
    escalate_to: Approver | None = None
    escalation_timeout: Duration | None = None
    on_timeout: Literal["deny", "approve"] | None = None
    alert_priority: str | None = None
    guardrails: list[GuardrailSpec] = Field(default_factory=list)
    description: str = ""
    tool_retry: Duration | None = None  # how long a failing tool call keeps being retried
    tool_alert_after: Duration | None = None  # when that waiting raises one alert

    @model_validator(mode="after")
    def _pinned_stays_approve(self) -> "ActionSpec":
        if self.pinned and self.mode not in (None, Mode.APPROVE):
            raise ValueError("a pinned action kind must stay in mode 'approve'")
        return self


class PolicyAdmins(_Strict):
    """Who signs policy edits (handrail.gate.policy_signing): `required` distinct users or role holders."""

    users: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)
    required: int = Field(default=1, ge=1)


class Defaults(_Strict):
    mode: Mode = Mode.APPROVE
    approvers: Approver = Field(default_factory=lambda: Approver(roles=["soc-analyst"]))
    required_approvals: int = Field(default=1, ge=1)
    approval_timeout: Duration = "4h"
    escalate_to: Approver = Field(default_factory=Approver)
    escalation_timeout: Duration = "4h"
    on_timeout: Literal["deny", "approve"] = "deny"
    alert_priority: str = "P2"
    tool_retry: Duration | None = None  # None: 6h for approved kinds, 30m for automated ones
    tool_alert_after: Duration = "15m"


class Policy(_Strict):
    users: dict[str, UserSpec] = Field(default_factory=dict)
    protected_networks: list[ProtectedNetwork] = Field(default_factory=list)
    allowlists: dict[str, list[str]] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    actions: dict[str, ActionSpec] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    freeze: list[FreezeWindow] = Field(default_factory=list)  # change freezes (handrail.gate.freeze)
    policy_admins: PolicyAdmins | None = None  # who must sign policy edits (handrail.gate.policy_signing)

    @model_validator(mode="after")
    def _policy_admins_can_sign(self) -> "Policy":
        admins = self.policy_admins
        if admins is None:
            return self
        for user in admins.users:
            if user not in self.users:
                raise ValueError(f"policy_admins names unknown user {user!r}")
        signers = [n for n, u in self.users.items()
                   if (n in admins.users or set(u.roles) & set(admins.roles)) and u.keys]
        if len(signers) < admins.required:
            raise ValueError(f"policy_admins needs {admins.required} signer(s) but only {len(signers)} admin(s) "
                             "have a key in the policy")
        return self

    @model_validator(mode="after")
    def _approvers_exist(self) -> "Policy":
        roles = {role for user in self.users.values() for role in user.roles}
        for kind, spec in self.actions.items():
            for label, group in (("approvers", spec.approvers), ("escalate_to", spec.escalate_to)):
                if group is None:
                    continue
                for user in group.users:
                    if user not in self.users:
                        raise ValueError(f"actions.{kind}.{label} names unknown user {user!r}")
                for role in group.roles:
                    if role not in roles:
                        raise ValueError(f"actions.{kind}.{label} names role {role!r} that no user has")
            needed = spec.required_approvals or self.defaults.required_approvals
            eligible = self._eligible(spec.approvers or self.defaults.approvers)
            if (spec.mode or self.defaults.mode) == Mode.APPROVE and len(eligible) < needed:
                raise ValueError(
                    f"actions.{kind} needs {needed} approvals but only {len(eligible)} user(s) may approve"
                )
        return self

    @model_validator(mode="after")
    def _keys_unique(self) -> "Policy":
        from handrail.gate.signatures import parse_public_key

        owner: dict[bytes, str] = {}
        for name, user in self.users.items():
            for line in user.keys:
                blob = parse_public_key(line).blob
                if owner.setdefault(blob, name) != name:
                    raise ValueError(f"users.{name}: a key of {owner[blob]} is listed for {name} too "
                                     "(one key, one person)")
        return self

    def _eligible(self, group: Approver) -> set[str]:
        return {
            name
            for name, spec in self.users.items()
            if name in group.users or set(spec.roles) & set(group.roles)
        }

    def spec_for(self, kind: str) -> ActionSpec:
        return self.actions.get(kind) or ActionSpec()

    def gate_policy(self, kind: str) -> GatePolicy:
        """Resolve defaults and return the snapshot one step is judged by."""
        spec, d = self.spec_for(kind), self.defaults
        mode = Mode.APPROVE if spec.pinned else (spec.mode or d.mode)
        return GatePolicy(
            kind=kind,
            mode=mode,
            pinned=spec.pinned,
            approvers=spec.approvers or d.approvers,
            escalate_to=spec.escalate_to or d.escalate_to,
            required_approvals=spec.required_approvals or d.required_approvals,
            approval_timeout_s=parse_duration(spec.approval_timeout or d.approval_timeout),
            escalation_timeout_s=parse_duration(spec.escalation_timeout or d.escalation_timeout),
            on_timeout=spec.on_timeout or d.on_timeout,
            user_roles={name: list(u.roles) for name, u in self.users.items()},
            alert_priority=spec.alert_priority or d.alert_priority,
            tool_retry_s=_tool_retry_s(spec, d, mode),
            tool_alert_after_s=parse_duration(spec.tool_alert_after or d.tool_alert_after),
            user_keys={name: list(u.keys) for name, u in self.users.items() if u.keys},
        )

    def guardrails_for(self, kind: str) -> list[dict[str, Any]]:
        return [g.model_dump(exclude_none=True) for g in self.spec_for(kind).guardrails]

    def never_touch_names(self, kind: str) -> list[str]:
        """Every name the kind's ``never_touch`` guardrails refuse: their own ``values`` and
        the allowlists they name (what the single-target guardrail checks)."""
        names: list[str] = []
        for g in self.guardrails_for(kind):
            if g["type"] == "never_touch":
                names += list(g.get("values", [])) + self.allowlists.get(g.get("allowlist") or "", [])
        return names

    def protected(self) -> list[tuple[str, str]]:
        return [(p.name, p.cidr) for p in self.protected_networks]


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"] if not str(part).startswith("function-"))
    msg = err["msg"].removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def parse_policy(text: str, source: str = "policy") -> Policy:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source} is not valid TOML: {exc}.") from None
    except RecursionError:
        raise PolicyError(f"{source} nests arrays or tables too deeply to be a policy.") from None
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise PolicyError(f"{source} holds a value that cannot be read: {str(exc)[:80]}.") from None
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(f"{source} is invalid: {_first_error(exc)}.") from None


def load_policy(path: Path) -> Policy:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"Policy file {path} does not exist (set HANDRAIL_POLICY).") from None
    except OSError as exc:
        raise PolicyError(f"Policy file {path} cannot be read: {exc.strerror}.") from None
    return parse_policy(text, source=str(path))


def default_policy_path() -> Path:
    """The policy shipped at the repository root, used when HANDRAIL_POLICY is absent."""
    return Path(__file__).resolve().parents[2] / "policy.toml"


def _tool_retry_s(spec: ActionSpec, defaults: Defaults, mode: Mode) -> float:
    """An approved containment waits hours for a rebooting tool; an automated one less."""
    value = spec.tool_retry or defaults.tool_retry
    if value is not None:
        return parse_duration(value)
    return 6 * 3600.0 if mode == Mode.APPROVE else 30 * 60.0
