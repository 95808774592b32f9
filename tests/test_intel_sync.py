"""The threat-intel sync on the time-skipping server: feeds from the lab, consensus, the
three tools through the gate, faulty feeds, the volume hold, age-out and history size."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from handrail.gate.models import RollbackTrigger, RunState, RunStatus
from handrail.intel.messages import IntelSyncTrigger
from tests.support import running_stack, send_decision, skip_time, with_test_keys
from workflows.intel_sync import IntelSync
from workflows.rollback import RollbackRun, rollback_id

pytestmark = pytest.mark.workflow

ROOT = Path(__file__).resolve().parents[1]
CRM = "161.71.0.0/16"
TOP_SITES = ROOT / "tests" / "data" / "top-sites.csv"  # our own small ranking (rank,domain)


def intel_policy(edl_mode: str = "guarded", extra_feeds: str = "", grace: str | None = None,
                 top_sites: Path | None = TOP_SITES) -> str:
    """The shipped policy, with the EDL batch automatic (it is `approve` by default) and a
    top-sites list, as a deployment has after `handrail popular refresh` (`top_sites=None`:
    none, so every name from a feed is left unblocked)."""
    text = (ROOT / "policy.toml").read_text()
    if top_sites is not None:
        text = text.replace("[settings.popular]\n", f'[settings.popular]\npath = "{top_sites}"\n', 1)
    text = re.sub(r'(\[actions\."firewall\.egress_block"\][^\[]*?\nmode = )"approve"',
                  rf'\1"{edl_mode}"', text, count=1)
    if extra_feeds:
        text = text.replace('  { name = "lab-stix", format = "stix", weight = 1.0 },\n',
                            '  { name = "lab-stix", format = "stix", weight = 1.0 },\n' + extra_feeds)
    if grace:
        text = re.sub(r'(\[settings\.intel\][^\[]*?\ngrace = )"[^"]*"', rf'\1"{grace}"', text, count=1)
    return text


def trigger() -> IntelSyncTrigger:
    return IntelSyncTrigger(requested_by="schedule")


async def proxy_blocked(stack, values: list[str]) -> set[str]:
    return set((await stack.tools.proxy.bulk_status(values)).blocked)


async def sync(stack, **kw) -> RunStatus:
    handle = await stack.start(IntelSync.run, trigger(), id=f"intel-{uuid.uuid4().hex[:8]}", **kw)
    return await handle.result()


async def test_sync_blocks_consensus_and_tightens_suspects(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, intel_policy()) as stack:
        result = await sync(stack)
        assert result.state == RunState.COMPLETED, result.error
        s = result.summary
        assert set(s["feeds"]) == {"lab-c2", "lab-drop", "lab-phish-csv", "lab-stix"}
        assert all(f["source"] == "fetched" for f in s["feeds"].values())
        assert s["faulty_feeds"] == []
        # named by c2 + stix; by c2 + csv + stix; inside lab-drop's 91.92.240.0/22 (address in network)
        validated = ["45.142.212.61", "193.42.33.14", "91.92.241.17", "185.243.115.84"]
        assert s["validated"] >= 3
        assert await proxy_blocked(stack, validated) == set(validated)
        edl = await stack.edl()
        assert all(v in edl for v in validated)
        rules = [r.rule for r in await stack.tools.ips.list_rules()]
        assert any("-> 91.92.241.17 any" in r for r in rules)
        # a suspect (named by one feed only) is tightened, not blocked
        suspects = ["62.204.41.88", "juliodedansk.icu", "cdn-telemetry-sync.net"]
        tightened = set((await stack.tools.proxy.bulk_status(suspects)).tightened)
        assert tightened == set(suspects)
        assert not await proxy_blocked(stack, suspects)
        alerts = [a for a in await stack.tools.alerts.list_alerts() if a.run_id == result.run_id]
        assert [a.title for a in alerts if "suspect" in a.title.lower()].__len__() == 1
        # every change is one ledger record with a set reference and an inverse
        records = stack.ledger.changes_for_run(result.run_id)
        assert {r.change.kind for r in records} == {"proxy.block", "ips.deploy_rule",
                                                      "firewall.egress_block", "proxy.tighten"}
        assert all(r.change.target.startswith("set:") for r in records)
        edl_rec = next(r for r in records if r.change.kind == "firewall.egress_block")
        assert edl_rec.before["present"] >= 1  # 45.142.212.61 was already on the EDL (seed)
        assert edl_rec.inverse.kind == "firewall.egress_unblock"

        # an unchanged feed set costs no tool change the second time
        again = await sync(stack)
        assert again.state == RunState.COMPLETED
        assert all(f["cached"] for f in again.summary["feeds"].values())
        assert stack.ledger.changes_for_run(again.run_id) == []

        # rolling the first run back restores the EDL exactly (the seeded entry stays)
        rb = await stack.start(RollbackRun.run, RollbackTrigger(run_id=result.run_id, requested_by="carol"),
                               id=rollback_id(result.run_id))
        report = await rb.result()
        assert report.state == "rolled_back", report
        assert report.results and all(r.verified for r in report.results)
        edl = await stack.edl()
        assert "45.142.212.61" in edl and "91.92.241.17" not in edl
        assert not await proxy_blocked(stack, validated)
        # ... and the next sync notices the rollback and leaves alone what a person took back,
        # though the feeds still name it: a rollback is a decision, not a glitch to repair
        third = await sync(stack)
        assert third.summary.get("reconciled_rollbacks") == 4
        assert not await proxy_blocked(stack, validated) and "91.92.241.17" not in await stack.edl()
        assert set(third.summary["not_readded_after_rollback"]) == {
            "proxy.block", "ips.deploy_rule", "firewall.egress_block", "proxy.tighten"}
        assert stack.ledger.changes_for_run(third.run_id) == []
        assert "not_readded_after_rollback" in (await sync(stack)).summary  # every sync, not once
        # `readd_rolled_back = true` for one sync adds them back
        readd = intel_policy().replace("threshold = 2.0", "threshold = 2.0\nreadd_rolled_back = true")
        stack.set_policy(with_test_keys(readd))
        fourth = await sync(stack)
        assert "not_readded_after_rollback" not in fourth.summary
        assert await proxy_blocked(stack, validated) == set(validated)


# on the policy's allowlist (never_touch of proxy.block): a feed naming them is faulty like one naming the CRM
ALLOWLISTED = ["login.salesforce.com", "https://login.microsoft.com/"]


async def test_faulty_feed_entry_is_dropped_with_an_alert_and_the_rest_applied(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, intel_policy()) as stack:
        body = (await stack.tools.intel.fetch_feed("lab-drop")).decode()
        await stack.tools.intel.publish_feed("lab-drop", body + "161.0.0.0/8\n" + CRM + "\n")
        rows = (await stack.tools.intel.fetch_feed("lab-phish-csv")).decode()
        await stack.tools.intel.publish_feed("lab-phish-csv", rows + f"{ALLOWLISTED[0]},domain\n"
                                             f"{ALLOWLISTED[1]},url\n")
        result = await sync(stack)
        assert result.state == RunState.COMPLETED, result.error
        assert result.summary["faulty_feeds"] == ["lab-drop", "lab-phish-csv"]
        drop = result.summary["feeds"]["lab-drop"]
        assert drop["dropped"] == 2 and drop["kept"] == 5
        assert result.summary["feeds"]["lab-phish-csv"]["dropped"] == 2
        alerts = [a for a in await stack.tools.alerts.list_alerts() if a.run_id == result.run_id]
        faulty = {a.title: a.body for a in alerts if "faulty" in a.title}
        assert len(faulty) == 2
        drop_alert = faulty["Intel feed lab-drop looks faulty"]
        assert "161.0.0.0/8" in drop_alert and CRM in drop_alert
        assert all(name in faulty["Intel feed lab-phish-csv looks faulty"] for name in ALLOWLISTED)
        edl = await stack.edl()
        assert "161.0.0.0/8" not in edl and CRM not in edl
        assert "91.92.241.17" in edl  # the rest of the update went through
        assert not await proxy_blocked(stack, ["161.0.0.0/8", CRM] + ALLOWLISTED)
        assert not (await stack.tools.proxy.bulk_status(ALLOWLISTED)).tightened


# ranked inside the cut-off of tests/data/top-sites.csv, or a page on such a site's own host
POPULAR = ["wikipedia.org", "www.dropbox.com", "https://www.dropbox.com/", "https://www.linkedin.com/in/someone"]
# a customer's page on a user-content platform's service host (googleapis.com is ranked): kept
PLATFORM_PAGE = "https://storage.googleapis.com/some-bucket/login.html"
UNRANKED = "login-verify-account.top"


async def test_popular_sites_named_by_feeds_are_never_blocked_automatically(time_env, tmp_path):
    """Two feeds agreeing on a popular site is no reason to block it on the proxy or the IPS
    without a human: it is left unblocked (and untightened), counted per feed, and one alert
    names them; the unranked name and the platform customer's page are blocked as before."""
    rows = "indicator,type\n" + "".join(f"{v},{'url' if '://' in v else 'domain'}\n"
                                         for v in [*POPULAR, PLATFORM_PAGE, UNRANKED])
    columns = 'columns = { indicator = "indicator", type = "type" }'
    extra = "".join(f'  {{ name = "{name}", format = "csv", weight = 1.0, {columns} }},\n'
                    for name in ("names-a", "names-b"))
    async with running_stack(time_env.client, tmp_path, intel_policy(extra_feeds=extra)) as stack:
        await stack.tools.intel.publish_feed("names-a", rows, format="csv")
        await stack.tools.intel.publish_feed("names-b", rows, format="csv")
        result = await sync(stack)
        assert result.state == RunState.COMPLETED, result.error
        assert await proxy_blocked(stack, [*POPULAR, PLATFORM_PAGE, UNRANKED]) == {PLATFORM_PAGE, UNRANKED}
        assert not (await stack.tools.proxy.bulk_status(POPULAR)).tightened
        rules = "\n".join(r.rule for r in await stack.tools.ips.list_rules())
        assert UNRANKED in rules and "wikipedia.org" not in rules and "dropbox.com" not in rules
        assert result.summary["popular_not_blocked"] == {"names-a": 4, "names-b": 4}
        feed = result.summary["feeds"]["names-a"]
        assert feed["popular_dropped"] == 4 and not feed["faulty"]
        assert any(r.startswith("popular site") for r in feed["dropped_by_reason"])
        alerts = [a for a in await stack.tools.alerts.list_alerts() if a.run_id == result.run_id]
        popular = [a for a in alerts if "not blocked" in a.title]
        assert [a.title for a in popular] == ["Intel sync: 8 names from the feeds were not blocked (popular sites)"]
        assert "wikipedia.org is rank 21" in popular[0].body and popular[0].priority == "P3"
        assert popular[0].body.count("wikipedia.org is rank 21") == 1  # named by both feeds, shown once


async def test_without_a_top_sites_list_no_name_from_a_feed_is_blocked(time_env, tmp_path):
    """Fail safe, as every sinkhole holds without a list: names are left unblocked and the
    administrators are told why (P1); addresses are blocked as before."""
    async with running_stack(time_env.client, tmp_path, intel_policy(top_sites=tmp_path / "absent.csv")) as stack:
        result = await sync(stack)
        assert result.state == RunState.COMPLETED, result.error
        assert not (await stack.tools.proxy.bulk_status(["juliodedansk.icu"])).tightened
        assert await proxy_blocked(stack, ["45.142.212.61"]) == {"45.142.212.61"}
        assert set(result.summary["popular_not_blocked"]) == {"lab-phish-csv", "lab-stix"}
        reasons = result.summary["feeds"]["lab-stix"]["dropped_by_reason"]
        assert any(r.startswith("no readable top-sites list") and "absent.csv" in r for r in reasons), reasons
        alerts = [a for a in await stack.tools.alerts.list_alerts() if a.run_id == result.run_id]
        [alert] = [a for a in alerts if "not blocked" in a.title]
        assert "(no readable top-sites list)" in alert.title and alert.priority == "P1"


async def _wait_hold(stack, handle) -> RunStatus:
    return await stack.wait_for(handle, lambda s: s.state == RunState.AWAITING_APPROVAL, timeout=30)


def _moved_past(step_id: str):
    def predicate(s: RunStatus) -> bool:
        pending = s.pending_step()
        return s.state not in (RunState.RUNNING, RunState.AWAITING_APPROVAL) or (
            pending is not None and pending.step_id != step_id)
    return predicate


async def test_volume_anomaly_holds_then_approval_applies(time_env, tmp_path):
    big = "".join(f"23.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}\n" for i in range(1, 6001))
    extra = ('  { name = "burst-a", format = "ipset", weight = 1.0 },\n'
             '  { name = "burst-b", format = "ipset", weight = 1.0 },\n')
    async with running_stack(time_env.client, tmp_path, intel_policy(extra_feeds=extra)) as stack:
        await stack.tools.intel.publish_feed("burst-a", big, format="ipset")
        await stack.tools.intel.publish_feed("burst-b", big, format="ipset")
        handle = await stack.start(IntelSync.run, trigger(), id="intel-burst")
        held = await _wait_hold(stack, handle)
        step = held.pending_step()
        assert step.change.kind == "proxy.block"
        [verdict] = [v for v in step.verdicts if v.guardrail == "max_batch"]
        assert "burst-a" in verdict.reason and "exceed the limit of 5000" in verdict.reason
        assert not await proxy_blocked(stack, ["23.0.0.1"])
        approved = []
        while True:  # proxy, IPS and EDL batches each hold: approve each as it comes
            await send_decision(handle, "bob")
            approved.append(step.change.kind)
            status = await stack.wait_for(handle, _moved_past(step.step_id), timeout=30)
            if status.pending_step() is None:
                break
            step = status.pending_step()
            assert "max_batch" in {v.guardrail for v in step.verdicts}
        assert approved == ["proxy.block", "ips.deploy_rule", "firewall.egress_block"]
        result = await handle.result()
        assert result.state == RunState.COMPLETED, result.error
        assert result.summary["applied"]["proxy.block"]["added"] >= 6000
        assert await proxy_blocked(stack, ["23.0.0.1", "23.0.23.112"]) == {"23.0.0.1", "23.0.23.112"}
        assert "23.0.0.1" in await stack.edl()


async def test_age_out_after_grace_period(fresh_time_env, tmp_path):
    async with running_stack(fresh_time_env.client, tmp_path, intel_policy(grace="7d")) as stack:
        first = await sync(stack)
        assert await proxy_blocked(stack, ["91.92.241.17"]) == {"91.92.241.17"}
        c2 = (await stack.tools.intel.fetch_feed("lab-c2")).decode()
        await stack.tools.intel.publish_feed("lab-c2", c2.replace("91.92.241.17\n", ""))
        drop = (await stack.tools.intel.fetch_feed("lab-drop")).decode()
        await stack.tools.intel.publish_feed("lab-drop", drop.replace("91.92.240.0/22\n", ""))
        gone = await sync(stack)  # left every feed just now: within the grace period
        assert gone.summary["age"]["newly_absent"] >= 1
        assert gone.summary["aged_out"] == {}
        assert await proxy_blocked(stack, ["91.92.241.17"]) == {"91.92.241.17"}
        await skip_time(fresh_time_env, timedelta(days=8))
        late = await sync(stack)
        assert late.state == RunState.COMPLETED, late.error
        assert late.summary["aged_out"]["proxy.unblock"]["applied"] >= 1
        assert not await proxy_blocked(stack, ["91.92.241.17"])
        assert "91.92.241.17" not in await stack.edl()
        assert "45.142.212.61" in await stack.edl()  # still in two feeds
        assert not any("-> 91.92.241.17 any" in r.rule for r in await stack.tools.ips.list_rules())
        # the seeded EDL entry for the /22 was not ours: age-out leaves it alone
        assert "91.92.240.0/22" in await stack.edl()
        kinds = {r.change.kind for r in stack.ledger.changes_for_run(late.run_id)}
        assert {"proxy.unblock", "firewall.egress_unblock", "ips.remove_rule"} <= kinds
        del first


async def drift_of(stack) -> list:
    from handrail.gate.reconcile import ReconcileTrigger
    from workflows.reconcile import Reconcile

    report = await stack.client.execute_workflow(
        Reconcile.run, ReconcileTrigger(revert_expired=False), id=f"drift-{uuid.uuid4().hex[:8]}",
        task_queue=stack.settings.task_queue)
    return report.drift


async def test_drift_judges_a_batch_by_what_the_sync_still_applies(fresh_time_env, tmp_path):
    """After an age-out the first sync's batch blocks no longer hold every member: the age-out
    (another set) took some back, as the sync meant. `handrail drift` judges each batch on the
    members the sync still counts as its own, so a normal age-out is no drift; a member taken
    off the tool behind the sync's back still is."""
    async with running_stack(fresh_time_env.client, tmp_path, intel_policy(grace="7d")) as stack:
        await sync(stack)
        assert await drift_of(stack) == []
        c2 = (await stack.tools.intel.fetch_feed("lab-c2")).decode()
        await stack.tools.intel.publish_feed("lab-c2", c2.replace("91.92.241.17\n", ""))
        drop = (await stack.tools.intel.fetch_feed("lab-drop")).decode()
        await stack.tools.intel.publish_feed("lab-drop", drop.replace("91.92.240.0/22\n", ""))
        await sync(stack)
        await skip_time(fresh_time_env, timedelta(days=8))
        late = await sync(stack)
        assert late.summary["aged_out"]["proxy.unblock"]["applied"] >= 1
        assert await drift_of(stack) == []

        await stack.tools.proxy.bulk_unblock(["45.142.212.61"], idempotency_key="behind-the-sync")
        [item] = await drift_of(stack)
        assert item.change.startswith("proxy.block set:") and item.detail.startswith("the ledger says it is live")


async def test_history_stays_small_with_a_200k_indicator_feed(time_env, tmp_path):
    import numpy as np

    rng = np.random.default_rng(7)
    addrs = np.unique(rng.integers(24 << 24, 96 << 24, size=210_000, dtype=np.int64))[:200_000]
    lines = [f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}" for a in addrs.tolist()]
    big_a = "# big feed\n" + "\n".join(lines) + "\n"
    big_b = "\n".join(lines[:20_000]) + "\n"  # 20,000 of them named twice: validated
    extra = ('  { name = "big-a", format = "ipset", weight = 1.0 },\n'
             '  { name = "big-b", format = "ipset", weight = 1.0 },\n')
    policy = intel_policy(extra_feeds=extra).replace("max = 5000", "max = 1000000")
    async with running_stack(time_env.client, tmp_path, policy) as stack:
        await stack.tools.intel.publish_feed("big-a", big_a, format="ipset")
        await stack.tools.intel.publish_feed("big-b", big_b, format="ipset")
        handle = await stack.start(IntelSync.run, trigger(), id="intel-big")
        result = await handle.result()
        assert result.state == RunState.COMPLETED, result.error
        assert result.summary["feeds"]["big-a"]["accepted"] == 200_000
        assert result.summary["applied"]["proxy.tighten"]["added"] >= 180_000
        assert result.summary["applied"]["firewall.egress_block"]["added"] >= 20_000
        history = await handle.fetch_history()
        size = sum(event.ByteSize() for event in history.events)
        as_json = len(history.to_json())
        print(f"history: {len(history.events)} events, {size} bytes protobuf, {as_json} bytes JSON")
        assert size < 100_000 and as_json < 200_000


async def test_unreachable_feed_falls_back_to_its_last_good_content(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, intel_policy()) as stack:
        await sync(stack)
        await stack.tools.lab_set_fault("/intel/feeds/lab-c2", error_rate=1.0, error_status=503)
        result = await sync(stack)
        assert result.state == RunState.COMPLETED, result.error
        c2 = result.summary["feeds"]["lab-c2"]
        assert c2["source"] == "last-good" and c2["error"]
        assert result.summary["age"]["newly_absent"] == 0  # an outage is not indicators leaving
        assert stack.ledger.changes_for_run(result.run_id) == []


async def test_a_feed_the_sync_cannot_use_is_named_and_alerted_every_sync(time_env, tmp_path):
    """A feed that answers with a login page, is gone from the server, or cannot be read falls
    back to its last good content; the run says so at the top of its summary and alerts each
    sync, so a feed dead for months is not silently replayed for ever."""
    async with running_stack(time_env.client, tmp_path, intel_policy()) as stack:
        await sync(stack)
        await stack.tools.intel.publish_feed("lab-c2", "<html><body>Please sign in</body></html>")
        await stack.tools.intel.delete_feed("lab-drop")
        await stack.tools.intel.publish_feed("lab-stix", '{"type": "bundle", "objects": [', format="stix")
        for _ in range(2):
            result = await sync(stack)
            assert result.state == RunState.COMPLETED, result.error
            unavailable = result.summary["unavailable_feeds"]
            assert set(unavailable) == {"lab-c2", "lab-drop", "lab-stix"}
            assert "HTML page" in unavailable["lab-c2"] and "cannot be read as stix" in unavailable["lab-stix"]
            alerts = [a for a in await stack.tools.alerts.list_alerts() if a.run_id == result.run_id]
            assert sorted(a.title for a in alerts if "could not be used" in a.title) == [
                f"Intel feed {name} could not be used; its last good content is used"
                for name in ("lab-c2", "lab-drop", "lab-stix")]
            assert result.summary["age"]["newly_absent"] == 0
            assert not any(".." in a.body for a in alerts if "could not be used" in a.title)


async def test_many_parts_run_in_child_workflows(time_env, tmp_path):
    big = "".join(f"23.1.{(i >> 8) & 255}.{i & 255}\n" for i in range(1, 3001))
    extra = ('  { name = "burst-a", format = "ipset", weight = 1.0 },\n'
             '  { name = "burst-b", format = "ipset", weight = 1.0 },\n')
    policy = intel_policy(extra_feeds=extra).replace(
        "change_max_members = 200000", "change_max_members = 1000\nchild_after_parts = 2")
    async with running_stack(time_env.client, tmp_path, policy) as stack:
        await stack.tools.intel.publish_feed("burst-a", big, format="ipset")
        await stack.tools.intel.publish_feed("burst-b", big, format="ipset")
        result = await sync(stack)
        assert result.state == RunState.COMPLETED, result.error
        children = result.summary["children"]
        assert children == [f"{result.run_id}-{k}" for k in
                            ("proxy.block", "ips.deploy_rule", "firewall.egress_block")]
        assert result.summary["applied"]["proxy.block"]["added"] >= 3000
        assert stack.ledger.changes_for_run(result.run_id)[0].change.kind == "proxy.tighten"
        parts = stack.ledger.changes_for_run(children[0])
        assert len(parts) == 4 and all(r.change.params["count"] <= 1000 for r in parts)
        assert await proxy_blocked(stack, ["23.1.11.184"]) == {"23.1.11.184"}


async def test_a_feed_that_suddenly_shrinks_keeps_its_last_good_content_and_alerts(time_env, tmp_path):
    """An error page, a captive portal or a truncated download that reads as (almost) nothing
    must not count as the feed dropping its indicators: the last good content is used (the
    age-out clock does not start), the administrators are alerted, and `hold_shrink = 0`
    accepts a real shrink."""
    many = "".join(f"23.2.0.{i}\n" for i in range(1, 41))
    extra = '  { name = "shrinker", format = "ipset", weight = 2.0 },\n'  # validated on its own word
    policy = intel_policy(extra_feeds=extra)
    async with running_stack(time_env.client, tmp_path, policy) as stack:
        await stack.tools.intel.publish_feed("shrinker", many, format="ipset")
        first = await sync(stack)
        assert first.summary["feeds"]["shrinker"]["kept"] == 40
        assert await proxy_blocked(stack, ["23.2.0.7"]) == {"23.2.0.7"}

        await stack.tools.intel.publish_feed("shrinker", "23.2.0.1\n# upstream error: quota exceeded\n",
                                             format="ipset")
        second = await sync(stack)
        assert second.state == RunState.COMPLETED, second.error
        held = second.summary["feeds"]["shrinker"]
        assert held["source"] == "last-good" and held["held"] and held["kept"] == 40, held
        assert "keeps 1 entries" in held["error"] and "kept 40" in held["error"]
        assert second.summary["held_feeds"] == ["shrinker"]
        assert second.summary["age"]["newly_absent"] == 0  # nothing it named starts to age out
        alerts = [a for a in await stack.tools.alerts.list_alerts() if a.run_id == second.run_id]
        assert [a.title for a in alerts if "shrank" in a.title] == [
            "Intel feed shrinker shrank suddenly; its last good content is used"]
        third = await sync(stack)  # still held: its last good content was not replaced
        assert third.summary["feeds"]["shrinker"]["held"]

        stack.set_policy(with_test_keys(policy.replace("threshold = 2.0", "threshold = 2.0\nhold_shrink = 0")))
        accepted = await sync(stack)
        shrunk = accepted.summary["feeds"]["shrinker"]
        assert shrunk["source"] == "fetched" and shrunk["kept"] == 1 and "held" not in shrunk
        assert accepted.summary["age"]["newly_absent"] == 39


async def test_fetched_content_that_cannot_be_read_keeps_the_last_good_content(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, intel_policy()) as stack:
        first = await sync(stack)
        kept = first.summary["feeds"]["lab-stix"]["kept"]
        await stack.tools.intel.publish_feed("lab-stix", '{"type": "bundle", "objects": [', format="stix")
        result = await sync(stack)
        stix = result.summary["feeds"]["lab-stix"]
        assert stix["source"] == "last-good" and stix["kept"] == kept > 0, stix
        assert "cannot be read as stix" in stix["error"]
        assert result.summary["age"]["newly_absent"] == 0
