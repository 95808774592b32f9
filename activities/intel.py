"""The intel sync's side effects: download feeds, normalise, guard, plan, remember.

Each activity takes and returns hashes and counts (``handrail.intel.messages`` models); the
feeds and sets themselves live in the content-addressed store and the sync's memory in
:mod:`handrail.intel.state`: files and SQLite under ``HANDRAIL_HOME``, or PostgreSQL beside
the ledger, shared by every worker (so a sync's activities may run on any of them).
Nothing here decides trust: the per-indicator never-block checks (protected networks,
special-use space, allowlisted names) *drop* entries and report them (so the workflow can
alert), the volume check and every tool change happen in the gate. The CPU work and every
store, state and ledger call run in a thread so the worker's event loop stays responsive.
Feeds are data: nothing here resolves or opens anything a feed names.
"""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.context import WorkerContext
from activities.errors import policy_failure
from activities.ledger_io import off_loop
from handrail.actions.intel import added_members
from handrail.gate.policy import PolicyError
from handrail.intel.config import IntelConfigError, intel_settings
from handrail.intel.guardrails import PopularNames
from handrail.intel.messages import (
    MAX_HITS_SHOWN,
    REMOVE_KIND,
    CommitRequest,
    CommitResult,
    FeedOutcome,
    FeedRequest,
    PlanRequest,
    SyncConfig,
    SyncPlan,
)
from handrail.intel.normalize import FeedFormatError
from handrail.intel.pipeline import guard_stored_set
from handrail.intel.planning import plan_sync, store_json
from handrail.ops.log import get_logger
from handrail.runbooks.phishing.popular import PopularSettings, RankingUnavailable, load_ranking
from handrail.tools.errors import ToolError


class IntelActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.settings, self.tools, self.ledger = ctx.settings, ctx.tools, ctx.ledger
        self.store, self.state = ctx.intel.store, ctx.intel.state

    @activity.defn
    async def intel_config(self, run_id: str) -> SyncConfig:
        """``[settings.intel]`` and the protected networks, as this run will use them."""
        policy = self.ctx.policy()
        try:
            cfg = intel_settings(policy)
        except IntelConfigError as exc:
            raise policy_failure(exc) from None
        if not cfg.feeds:
            raise ApplicationError("settings.intel names no feeds; nothing to sync.",
                                   type="PolicyError", non_retryable=True)
        allowlist = sorted({n for kind in REMOVE_KIND for n in policy.never_touch_names(kind)})
        return SyncConfig(**cfg.model_dump(), protected=policy.protected(), allowlist=allowlist)

    @activity.defn
    async def intel_feed(self, req: FeedRequest) -> FeedOutcome:
        """Download one feed (or fall back to its last good content), store it by hash,
        normalise it (cached by content) and drop what the never-block guardrails refuse."""
        log = get_logger(run_id=req.run_id, feed=req.spec.name)
        spec = req.spec
        source, error, sha = "fetched", None, None
        try:
            data = await self.tools.intel.fetch_feed(spec.name)
            sha = await asyncio.to_thread(self.store.put_feed, data)
        except ToolError as exc:
            if exc.retryable and activity.info().attempt < 3:
                raise  # let Temporal retry a flaky feed server a couple of times first
            error = str(exc)
            sha = await asyncio.to_thread(self.state.last_feed, spec.name)
            source = "last-good" if sha else "missing"
            log.warning("feed unavailable", error=error, fallback=source)
        if sha is None:
            return FeedOutcome(feed=spec.name, format=spec.format, source="missing", error=error)
        popular = await asyncio.to_thread(self._popular_names, self.ctx.policy())
        try:
            out = await asyncio.to_thread(self._normalise_and_guard, req, sha, popular)
        except FeedFormatError as exc:
            unreadable = FeedOutcome(feed=spec.name, format=spec.format, source=source, sha256=sha,
                                     error=f"cannot be read as {spec.format}: {exc}")
            if source != "fetched":
                return unreadable
            # fetched content that cannot be read is no reason to forget what the feed said
            held = await asyncio.to_thread(self._last_good, req, unreadable.error or "", popular)
            log.warning("feed unreadable", error=unreadable.error, fallback="last-good" if held else "none")
            return held or unreadable
        if source == "fetched":
            held = await asyncio.to_thread(self._held_if_shrunk, req, out, popular)
            if held is not None:
                log.warning("feed shrank; last good content kept", error=held.error)
                return held
            await asyncio.to_thread(self.state.remember_feed, spec.name, sha)
        return out.model_copy(update={"source": source, "error": error})

    def _popular_names(self, policy) -> PopularNames:
        """The top-sites ranking the ``popular_domain`` guardrail reads (``[settings.popular]``);
        an unreadable list or section is a ranking of None with the reason (every name dropped)."""
        try:
            settings = PopularSettings.from_policy(policy.settings, self.settings.home,
                                                   self.settings.policy_path.parent)
        except PolicyError as exc:
            return PopularNames(None, 0, str(exc))
        try:
            return PopularNames(load_ranking(settings.path), settings.cutoff)
        except RankingUnavailable as exc:
            return PopularNames(None, settings.cutoff, exc.reason)

    def _last_good(self, req: FeedRequest, error: str, popular: PopularNames) -> FeedOutcome | None:
        sha = self.state.last_feed(req.spec.name)
        if sha is None:
            return None
        try:
            out = self._normalise_and_guard(req, sha, popular)
        except FeedFormatError:
            return None
        return out.model_copy(update={"source": "last-good", "error": error})

    def _held_if_shrunk(self, req: FeedRequest, new: FeedOutcome, popular: PopularNames) -> FeedOutcome | None:
        """The last good content instead of `new` when `new` keeps fewer than ``hold_shrink``
        of its entries: a feed that suddenly lists (almost) nothing is far more often an
        error page, a captive portal or a truncated file than the threat going away, and
        using it would start the age-out clock on everything only it named."""
        cfg = req.config
        last = self.state.last_feed(req.spec.name)
        if not cfg.hold_shrink or last is None or last == new.sha256:
            return None
        try:
            old = self._normalise_and_guard(req, last, popular)
        except FeedFormatError:
            return None
        if old.kept < cfg.hold_shrink_min or new.kept >= cfg.hold_shrink * old.kept:
            return None
        why = (f"the fetched content (store {new.sha256}) keeps {new.kept} entries where its last good content "
               f"kept {old.kept}; the last good content is used until the feed recovers")
        return old.model_copy(update={"source": "last-good", "error": why, "held": True})

    def _normalise_and_guard(self, req: FeedRequest, sha: str, popular: PopularNames) -> FeedOutcome:
        spec, cfg = req.spec, req.config
        data = self.store.get_feed(sha)
        parse = self.store.normalize(data, feed=spec.name, format=spec.format, columns=spec.columns)
        protected = {cidr: name for name, cidr in cfg.protected}
        guard = guard_stored_set(self.store, spec.name, parse.set_sha256, protected, cfg.allowlist, popular)
        unblocked = guard.dropped_by_reason.get(popular.reason, 0)
        report = store_json(self.store, {"parse": parse.model_dump(mode="json"),
                                         "guardrails": guard.model_dump(mode="json")})
        examples, per_reason = [], {}
        for ex in parse.examples:  # a few per reason, then a few overall
            if len(examples) >= cfg.examples_per_feed:
                break
            if per_reason.get(ex.reason, 0) < 2:
                per_reason[ex.reason] = per_reason.get(ex.reason, 0) + 1
                examples.append(ex.model_copy(update={"text": ex.text[:200]}))
        return FeedOutcome(
            feed=spec.name, format=spec.format, source="fetched", sha256=sha, size=len(data),
            cached=parse.cached, accepted=parse.accepted, rejected=parse.rejected,
            unsupported=parse.unsupported, rejects_by_reason=parse.rejects_by_reason,
            examples=examples, entries=guard.kept + guard.dropped, kept=guard.kept,
            dropped=guard.dropped, dropped_by_reason=guard.dropped_by_reason, faulty=guard.faulty,
            alert=guard.alert, protected_hits=[h.entry for h in guard.protected_hits[:MAX_HITS_SHOWN]],
            popular_dropped=unblocked, popular_reason=popular.reason if unblocked else None,
            popular_unranked=bool(unblocked) and popular.ranking is None,
            popular_hits=[h.entry for h in guard.examples if h.reason == popular.reason][:MAX_HITS_SHOWN],
            clean_set_sha256=guard.clean_set_sha256, report_sha256=report)

    @activity.defn
    async def intel_plan(self, req: PlanRequest) -> SyncPlan:
        """Consensus, what each tool still needs, and what has aged out."""
        def reverted(change_id: str) -> bool:
            return self.ledger.revert_of(change_id) is not None

        def by_person(change_id: str) -> bool:  # `handrail rollback`, not compensation or expiry
            revert = self.ledger.revert_of(change_id)
            return revert is not None and revert.reason == "rollback"

        return await asyncio.to_thread(plan_sync, self.store, self.state, req, reverted, by_person)

    @activity.defn
    async def intel_commit(self, req: CommitRequest) -> CommitResult:
        """Remember what a gated batch change did (read back from its ledger record)."""
        record = await off_loop(self.ledger.change, req.change_id)
        if record is None:
            raise ApplicationError(f"no change {req.change_id} in the ledger", non_retryable=True)
        return await asyncio.to_thread(self._commit, req, record)  # the store and the state block

    def _commit(self, req: CommitRequest, record) -> CommitResult:
        others = None
        if req.sign > 0:
            if record.status not in ("applied", "unchanged"):
                return CommitResult(committed=False)
            added = added_members(self.store, record.before,
                                  ips_only=record.change.kind == "firewall.egress_block")
            sha = self.store.put_set(added)
            count = len(added)
            others = record.before["present_sha256"]
        else:  # a removal: stop tracking every member, whether it was still there or not
            sha, count = record.before["set"], record.before["members"]
        done = self.state.commit(req.change_id, req.applied_key, sha, req.sign, others)
        return CommitResult(committed=done, count=count)

