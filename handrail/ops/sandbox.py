"""Which modules the workflow sandbox passes through, and why that is safe.

Temporal runs each workflow run in a sandbox that re-imports the workflow's module, and
everything it imports that is not passed through, so that no run can see another's
module state. That isolation is paid per run: importing the gate and the runbooks' rules
again for every run cost more Python than the rest of a one-step run together.

The modules below are passed through instead (imported once, shared by every run). The
rule for being on this list:

1. Deterministic: no clock, randomness, I/O, environment or threads at import or call time
   (workflow code gets time and ids from `workflow.now()` / `workflow.uuid4()`).
2. State-free: no module-level mutable state (no caches, registries filled at run time,
   counters, singletons); constants only, and the few module-level tables that are
   containers are read-only by convention and listed in `DOCUMENTED_CONSTANTS`.
3. Closed: whatever a listed module imports from this project is listed too.

`tests/test_sandbox_passthrough.py` checks 2 and 3 by inspecting module globals, checks 1
by reading each listed module's source (no clock, randomness or I/O), and
`tests/test_replay.py` replays recorded histories through `Replayer` with this same runner,
so a change that made a listed module nondeterministic shows up as a replay failure.

The runbook workflow modules (`workflows/<runbook>.py`) are listed too, under the same rule:
Temporal re-imports a run's workflow module in every run otherwise (compiling it and
applying `@workflow.defn` again), which was the largest per-run Python cost left of a
one-step run. Their per-run state lives where it belongs, on the workflow instance (a new
one per run), never on the module or the class; the state check above inspects class
attributes too. A new runbook module joins this list when it meets the rule (the tests
run on every listed module); a module that cannot (it needs module state) stays off it and
is simply re-imported per run. Activity modules are imported by workflows only to name
activities (`imports_passed_through`); their code never runs inside a workflow.
"""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PASSTHROUGH_MODULES: tuple[str, ...] = (
    # the engine: the gate and saga, the poller helper, the models, the approval judge, guardrails
    "workflows.gate",
    "workflows.poller",
    "workflows.patience",
    "workflows.notify",  # telling a waiting step's approvers (issue 18)
    "handrail.notify.message",
    "workflows.cases",
    "handrail.gate.search",
    "handrail.gate.models",
    "handrail.gate.approvals",
    "handrail.gate.decisions",
    "handrail.gate.signatures",
    "handrail.gate.requests",
    "workflows.requester",
    "handrail.gate.guardrails",
    "handrail.gate.judgement",
    "handrail.gate.policy",
    # the runbooks' pure rules
    "handrail.runbooks.phishing.rules",
    "handrail.runbooks.phishing.mail",
    "handrail.runbooks.phishing.indicators",
    "handrail.runbooks.exfiltration",
    "handrail.runbooks.privilege",
    "handrail.runbooks.rogue",
    "handrail.runbooks.cases",
    # the runbook workflow modules: not re-imported per run (see the module docstring)
    "workflows.egress_block",
    "workflows.exfiltration",
    "workflows.expiry",
    "workflows.intel_sync",
    "workflows.phishing",
    "workflows.phishing_intake",
    "workflows.preflight",
    "workflows.privilege_guard",
    "workflows.reconcile",
    "workflows.rogue_device",
    "workflows.rollback",
)

# Module-level containers that are constant tables: filled at import, never written after.
DOCUMENTED_CONSTANTS: dict[str, str] = {
    "handrail.gate.search.SEARCH_ATTRIBUTES": "names and types of the search attributes",
    "workflows.gate.READ_OPTS": "activity options, read with ** only",
    "workflows.patience.ROUND_OPTS": "activity options, read with ** only",
    "workflows.notify.NOTIFY_OPTS": "activity options, read with ** only",
    "handrail.notify.message._HEADLINE": "notice event -> headline words",
    "workflows.gate.CHECK_OPTS": "activity options, read with ** only",
    "workflows.gate.AUDIT_OPTS": "activity options, read with ** only",
    "workflows.gate.ONE_TRIP_OPTS": "activity options, read with ** only",
    "workflows.gate.TOOL_OPTS": "activity options, read with ** only",
    "workflows.gate.COMPENSATE_OPTS": "activity options, read with ** only",
    "workflows.gate.UNDO_OPTS": "activity options, read with ** only",
    "handrail.gate.signatures._CURVES": "SSH curve name -> cryptography curve",
    "handrail.gate.signatures._HASHES": "SSHSIG hash name -> hashlib constructor",
    "handrail.gate.guardrails.GUARDRAILS": "guardrail type -> pure function",
    "handrail.gate.guardrails.GUARDRAILS_BEFORE_ONE_SPELLING": "the same, as checks before 11298c5 read targets",
    "handrail.gate.guardrails._SEVERITY": "outcome ordering",
    "handrail.gate.guardrails._CONFIDENCE": "verdict confidence ordering",
    "handrail.gate.guardrails._SUFFIX_OWNERS": "public-suffix section -> whose sites a block takes",
    "handrail.gate.guardrails.SPECIAL_SPACE": "reserved networks",
    "handrail.gate.policy._UNIT_SECONDS": "duration units",
    "handrail.gate.policy.GUARDRAIL_TYPES": "known guardrail types",
    "handrail.gate.policy.BASELINE_STATS": "baseline statistic names",
    "handrail.gate.policy.GUARDRAIL_OPTIONS": "the options each guardrail reads",
    "handrail.gate.policy._OPTION_CHECKS": "the check of each guardrail option's value",
    "handrail.runbooks.phishing.indicators.DEFAULT_PORTS": "URL scheme default ports",
    "handrail.runbooks.phishing.indicators._CLOSERS": "bracket pairs",
    "workflows.exfiltration.READ_OPTS": "workflows.gate's activity options, read with ** only",
    "workflows.phishing.READ_OPTS": "workflows.gate's activity options, read with ** only",
    "workflows.phishing.TOOL_OPTS": "workflows.gate's activity options, read with ** only",
    "workflows.phishing_intake.READ_OPTS": "workflows.gate's activity options, read with ** only",
    "workflows.privilege_guard.TOOL_OPTS": "workflows.gate's activity options, read with ** only",
    "workflows.rogue_device.TOOL_OPTS": "workflows.gate's activity options, read with ** only",
    "workflows.rollback.CHECK_OPTS": "workflows.gate's activity options, read with ** only",
    "workflows.expiry.REVERT_OPTS": "activity options, read with ** only",
    "workflows.expiry.AUDIT_OPTS": "activity options, read with ** only",
    "workflows.reconcile.READ_OPTS": "activity options, read with ** only",
    "workflows.reconcile.REVERT_OPTS": "activity options, read with ** only",
    "workflows.intel_sync.LOOK_RETRY": "a retry policy passed to activity calls, never modified",
}


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox every worker and every replay uses: the defaults plus PASSTHROUGH_MODULES."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )
