"""Runbook: the threat-intel sync (a Temporal Schedule starts it hourly; overlap skip).

1. Aggregate — every configured feed is downloaded, stored by hash, normalised (cached
   by content, so an unchanged feed costs almost nothing) and cleaned by the never-block
   guardrails, in parallel, one activity per feed. Rejected lines are counted per feed
   and reason (``summary["feeds"]``). A feed that named a protected network (or covers
   one), or a name on the allowlist (``never_touch``: salesforce.com, a URL on it), has
   those entries dropped, the rest kept, and the administrators get one alert per faulty
   feed naming it and the entries.
2. Consensus, 3.–5. tools, 6. age-out — one planning activity compares the validated
   and suspect sets with what the sync has already applied, and the workflow sends each
   tool one gated *batch* change per part (``set:<sha256>`` targets, see
   ``handrail/actions/intel.py``): validated -> ``proxy.block``, ``ips.deploy_rule``,
   ``firewall.egress_block``; new suspects -> ``proxy.tighten`` plus ONE alert for
   investigation per sync; applied entries absent from every feed for longer than the
   grace period -> ``proxy.unblock`` / ``proxy.relax`` / ``ips.remove_rule`` /
   ``firewall.egress_unblock`` through the gate.

Guardrails and holds: the gate's ``max_batch`` holds a batch change bigger than its
threshold, naming the feeds contributing most. A denied add step ends the update: the
remaining add steps are skipped (what passed its own gate stays; ``handrail rollback``
undoes the run). Changes are never aborted by a denial (``abort_on_deny=False``): the
sync's other work — alerts, age-out — still happens and is reported.

History stays small whatever the feed size: the workflow sees hashes, counts and a few
examples; each gated change costs the same handful of events whether it carries ten
indicators or 200,000 (``change_max_members`` splits bigger updates into parts, because
one change must fit the gate's 60 s ``apply_change``). A kind with more parts than
``child_after_parts`` runs them in a child workflow ``IntelApply`` (id
``<run id>-<kind>``; its held steps are approved, and it is rolled back, by that id), so
the sync's own history grows with the number of tool kinds, not with the feed size. The
sync is one run per schedule tick, so there is no unbounded loop to ``continue_as_new``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.intel import IntelActivities
    from handrail.gate.models import Change, RunState, RunStatus, StepState
    from handrail.intel.messages import (
        CommitRequest,
        CommitResult,
        FeedOutcome,
        FeedRequest,
        IntelApplyRequest,
        IntelApplyResult,
        IntelSyncTrigger,
        PlanRequest,
        SyncConfig,
        SyncPlan,
        ToolWork,
    )

from workflows.gate import RunbookWorkflow

FEED_TIMEOUT = timedelta(minutes=5)
PLAN_TIMEOUT = timedelta(minutes=10)
LOOK_RETRY = RetryPolicy(maximum_attempts=5)
# a feed the sync could not use (unreachable, an HTML page, unreadable, gone) is named in the
# summary and alerted each sync; runs recorded before replay without those alerts
STALE_FEED_ALERT = "handrail-intel-stale-feed-alert"


@workflow.defn(name="IntelSync")
class IntelSync(RunbookWorkflow):
    @workflow.run
    async def run(self, trigger: IntelSyncTrigger) -> RunStatus:
        async with self.runbook("intel-sync", trigger.requested_by, subject="threat-intel sync", trigger=trigger) as rb:
            self._rb = rb
            summary = rb.status.summary
            cfg: SyncConfig = await rb.look(IntelActivities.intel_config, rb.run_id)

            # 1. aggregate: one activity per feed, in parallel
            outcomes: list[FeedOutcome] = await asyncio.gather(*(
                workflow.execute_activity_method(
                    IntelActivities.intel_feed, FeedRequest(run_id=rb.run_id, spec=spec, config=cfg),
                    start_to_close_timeout=FEED_TIMEOUT, retry_policy=LOOK_RETRY)
                for spec in cfg.feeds))
            summary["feeds"] = {o.feed: o.summary() for o in outcomes}
            summary["rejected"] = sum(o.rejected for o in outcomes)
            summary["dropped"] = sum(o.dropped for o in outcomes)
            faulty = [o for o in outcomes if o.faulty]
            summary["faulty_feeds"] = [o.feed for o in faulty]
            for o in faulty:
                await rb.alert(
                    cfg.alert_priority_faulty, f"Intel feed {o.feed} looks faulty",
                    f"{o.alert}. Those entries were dropped; the rest of the update from "
                    f"{o.feed} is used. Dropped by reason: {o.dropped_by_reason}. Full report: "
                    f"store {o.report_sha256}. Run {rb.run_id}.",
                    tags=["intel", "faulty-feed", f"feed:{o.feed}"])

            held = [o for o in outcomes if o.held]
            if held:
                summary["held_feeds"] = [o.feed for o in held]
            for o in held:
                await rb.alert(
                    cfg.alert_priority_faulty, f"Intel feed {o.feed} shrank suddenly; its last good content is used",
                    f"{o.error} (settings.intel.hold_shrink {cfg.hold_shrink:g}). A feed that suddenly lists "
                    f"almost nothing is usually an error page or a truncated download; nothing it named is "
                    f"unblocked while it is held. If the feed really shrank, set hold_shrink = 0 for one sync "
                    f"to accept it. Run {rb.run_id}.",
                    tags=["intel", "feed-shrank", f"feed:{o.feed}"])

            stale = [o for o in outcomes if o.source != "fetched" and not o.held]
            if stale and workflow.patched(STALE_FEED_ALERT):
                summary["unavailable_feeds"] = {o.feed: o.error or o.source for o in stale}
                for o in stale:
                    fallback = ("its last good content is used" if o.source == "last-good"
                                else "it has no last good content, so it names nothing this sync")
                    why = (o.error or "the feed could not be fetched").rstrip(". ")
                    await rb.alert(
                        cfg.alert_priority_faulty, f"Intel feed {o.feed} could not be used; {fallback}",
                        f"{why}. Until it is fixed (or taken out of settings.intel.feeds), what it named is "
                        f"neither refreshed nor aged out. Run {rb.run_id}.",
                        tags=["intel", "feed-unavailable", f"feed:{o.feed}"])

            unblocked = [o for o in outcomes if o.popular_dropped]
            if unblocked:
                summary["popular_not_blocked"] = {o.feed: o.popular_dropped for o in unblocked}
                total = sum(o.popular_dropped for o in unblocked)
                shown = list(dict.fromkeys(hit for o in unblocked for hit in o.popular_hits))[:10]
                no_list = any(o.popular_unranked for o in unblocked)
                await rb.alert(
                    cfg.alert_priority_faulty if no_list else cfg.alert_priority_suspect,
                    f"Intel sync: {total} names from the feeds were not blocked"
                    + (" (no readable top-sites list)" if no_list else " (popular sites)"),
                    f"{unblocked[0].popular_reason}. Named by "
                    + ", ".join(f"{o.feed} ({o.popular_dropped})" for o in unblocked)
                    + f"; first: {', '.join(shown)}. Nothing was blocked or tightened for them; block one by "
                    f"hand if it really is malicious. Run {rb.run_id}.",
                    tags=["intel", "popular", "not-blocked"])

            # 2. consensus and the work per tool
            sets = {o.feed: o.clean_set_sha256 for o in outcomes if o.clean_set_sha256}
            plan: SyncPlan = await workflow.execute_activity_method(
                IntelActivities.intel_plan,
                PlanRequest(run_id=rb.run_id, now=workflow.now().timestamp(), sets=sets, config=cfg),
                start_to_close_timeout=PLAN_TIMEOUT, retry_policy=LOOK_RETRY)
            summary["validated"] = plan.consensus.validated.total
            summary["suspect"] = plan.consensus.suspect.total
            summary["validated_sha256"] = plan.consensus.validated_sha256
            summary["suspect_sha256"] = plan.consensus.suspect_sha256
            summary["age"] = plan.age
            if plan.reconciled:
                summary["reconciled_rollbacks"] = plan.reconciled
            if plan.not_readded:  # a person rolled them back: not this sync's to undo
                summary["not_readded_after_rollback"] = plan.not_readded
            summary["applied"] = {}
            summary["aged_out"] = {}

            # 3.-5. validated: proxy, IPS, EDL (one gated batch per part). A denied add
            # ends the update: the remaining add steps are skipped.
            update_denied = None
            for kind, works in _by_kind(plan.adds):
                if update_denied:
                    for work in works:
                        _count(summary["applied"], work.kind, "skipped", work.count)
                    continue
                update_denied = await self._group(
                    cfg, kind, works, "Handrail intel sync: validated by consensus", +1,
                    summary["applied"], stop_on_deny=True)
            if update_denied:
                summary["update_denied"] = update_denied

            # 3. suspects: tighten, and one alert for the whole sync
            if plan.tighten:
                await self._group(cfg, "proxy.tighten", plan.tighten, "Handrail intel sync: suspect",
                                  +1, summary["applied"])
                total = sum(w.count for w in plan.tighten)
                tightened = summary["applied"].get("proxy.tighten", {}).get("added", 0)
                await rb.alert(
                    cfg.alert_priority_suspect, f"Intel sync: {total} suspect indicators to investigate",
                    f"{total} indicators are named by only one feed (below the consensus threshold "
                    f"{cfg.threshold:g}); most from {plan.suspect_feeds or 'n/a'}. The proxy now logs "
                    f"them in detail with packet capture ({tightened} tightened). Set: store "
                    f"{plan.consensus.suspect_sha256}. Run {rb.run_id}.",
                    tags=["intel", "suspect", "investigate"])

            # 6. age-out
            for kind, works in _by_kind(plan.removals):
                await self._group(cfg, kind, works, "Handrail intel sync: aged out", -1,
                                  summary["aged_out"])
        return rb.report()

    async def _group(self, cfg: SyncConfig, kind: str, works: list[ToolWork], comment: str,
                     sign: int, into: dict, stop_on_deny: bool = False) -> str | None:
        """Apply one kind's parts here, or — when there are many — in a child workflow, so
        this run's history grows with the number of kinds, not with the number of parts."""
        rb = self._rb
        if len(works) <= cfg.child_after_parts:
            return await apply_works(rb, cfg, works, comment, sign, into, stop_on_deny)
        child_id = f"{rb.run_id}-{kind}"
        rb.status.summary.setdefault("children", []).append(child_id)
        result: IntelApplyResult = await workflow.execute_child_workflow(
            "IntelApply",
            IntelApplyRequest(parent_run_id=rb.run_id, requested_by=rb.status.requested_by,
                              kind=kind, works=works, config=cfg, comment=comment, sign=sign,
                              stop_on_deny=stop_on_deny),
            id=child_id, result_type=IntelApplyResult)
        for k, counts in result.applied.items():
            for what, n in counts.items():
                _count(into, k, what, n)
        if result.state != RunState.COMPLETED.value:
            return result.denied or f"{child_id} ended {result.state}"
        return result.denied


@workflow.defn(name="IntelApply")
class IntelApply(RunbookWorkflow):
    """A sync's many parts of one kind, as a child run (own history, own ledger run id:
    approve its held steps and roll it back by its own id, ``<sync run id>-<kind>``)."""

    @workflow.run
    async def run(self, req: IntelApplyRequest) -> IntelApplyResult:
        """Returns counts only (the full timeline is its status query and the ledger), so
        the parent's history does not grow with the child's steps."""
        async with self.runbook("intel-apply", req.requested_by,
                                subject=f"{req.kind} for {req.parent_run_id}") as rb:
            rb.status.summary["applied"] = {}
            denied = await apply_works(rb, req.config, req.works, req.comment, req.sign,
                                       rb.status.summary["applied"], req.stop_on_deny)
            if denied:
                rb.status.summary["denied"] = denied
        return IntelApplyResult(state=rb.status.state.value, applied=rb.status.summary["applied"],
                                denied=rb.status.summary.get("denied"), error=rb.status.error)


def _count(into: dict, kind: str, what: str, n: int) -> None:
    into.setdefault(kind, {}).setdefault(what, 0)
    into[kind][what] += n


def _by_kind(works: list[ToolWork]) -> list[tuple[str, list[ToolWork]]]:
    groups: dict[str, list[ToolWork]] = {}
    for work in works:
        groups.setdefault(work.kind, []).append(work)
    return list(groups.items())


async def apply_works(rb, cfg: SyncConfig, works: list[ToolWork], comment: str, sign: int,
                      into: dict, stop_on_deny: bool = False) -> str | None:
    """Each part through the gate, then remember what it did. Returns why a part was
    denied (and, with ``stop_on_deny``, skips the parts after it)."""
    denied = None
    for work in works:
        if denied and stop_on_deny:
            _count(into, work.kind, "skipped", work.count)
            continue
        params = {"count": work.count, "batch": cfg.tool_batch, "comment": comment,
                  "part": f"{work.part}/{work.parts}"}
        if work.feeds:
            params["feeds"] = work.feeds
        if work.kind.startswith("ips."):
            params.update(rule_action=cfg.ips_action, sid_base=cfg.ips_sid_base)
        step = await rb.change(Change(kind=work.kind, target=f"set:{work.set_sha256}", params=params),
                               abort_on_deny=False)
        _count(into, work.kind, step.state.value, work.count)
        if step.state == StepState.DENIED:
            denied = denied or f"{work.kind} part {work.part}/{work.parts}: {step.note}"
            continue
        if step.state in (StepState.APPLIED, StepState.UNCHANGED) and step.change_id:
            done: CommitResult = await workflow.execute_activity_method(
                IntelActivities.intel_commit, CommitRequest(change_id=step.change_id, applied_key=work.applied_key,
                                              sign=sign), start_to_close_timeout=PLAN_TIMEOUT, retry_policy=LOOK_RETRY)
            if sign > 0:
                _count(into, work.kind, "added", done.count)
    return denied
