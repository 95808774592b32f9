"""Phishing judgement: look-alikes, the top-sites standing, the gate guardrails it feeds, the
verdict per domain on our own sample mail, and the dry run over the real corpus.

The real corpus and the real Tranco list are read in place from ../shared/fixtures/real
(tests skip naming it when absent); everything else uses our own data (lab/samples,
tests/data/top-sites.csv). Nothing is fetched or resolved.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import idna
import pytest
from typer.testing import CliRunner

from handrail.gate.guardrails import confidence, popular_domain
from handrail.gate.models import Change, GuardrailContext, Outcome
from handrail.runbooks.phishing.indicators import normalise_url, registrable_domain, url_host
from handrail.runbooks.phishing.lookalike import lookalike, make_brands
from handrail.runbooks.phishing.mail import parse_message
from handrail.runbooks.phishing.popular import (
    PopularSettings,
    RankingUnavailable,
    load_ranking,
    parse_ranking,
    rank_key,
    standing,
)
from handrail.runbooks.phishing.unwrap import is_wrapper
from handrail.runbooks.phishing.verdict import VerdictSettings, brands_for, is_call_to_action, judge
from lab.seed import SAMPLES_DIR

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
TOP_SITES = Path(__file__).resolve().parent / "data" / "top-sites.csv"
REAL = Path(os.environ.get("HANDRAIL_FIXTURES") or ROOT.parent / "shared" / "fixtures" / "real")
TRANCO = REAL / "popular" / "tranco-9WZP2-top50k.csv"
needs_real = pytest.mark.skipif(not (REAL / "phishing").is_dir() or not TRANCO.is_file(),
                                reason=f"real fixtures folder {REAL} is absent")

BRANDS = make_brands(["paypal.com", "microsoft.com", "docusign.com", "apple.com", "google.com", "amazon.com"],
                     ["handrail-corp"], ranked={"paypal.com", "microsoft.com", "docusign.com", "docusign.net"})


# -- look-alikes ---------------------------------------------------------------------------
@pytest.mark.parametrize(("domain", "brand", "how"), [
    ("paypa1.example", "paypal", "swap"),
    ("paypa1-login-verify.example", "paypal", "swap"),
    ("micr0soft-365-password.example", "microsoft", "swap"),
    ("rnicrosoft.example", "microsoft", "swap"),
    (idna.encode("pаypal.example", uts46=True).decode(), "paypal", "homoglyph"),  # Cyrillic а
    (idna.encode("аmazon-verify.example", uts46=True).decode(), "amazon", "homoglyph"),
    ("docusign-envelope-review.example", "docusign", "brand-plus-words"),
    ("secure-paypal-login.example", "paypal", "brand-plus-words"),
    ("appleid-verify.example", "apple", "brand-plus-words"),
    ("handrail-corp-sso.example", "handrail-corp", "brand-plus-words"),
    ("paypall.example", "paypal", "typo"),
])
def test_lookalikes_of_brands_are_caught(domain, brand, how):
    found = lookalike(domain, BRANDS)
    assert found is not None and (found.brand, found.how) == (brand, how)


def test_a_brand_in_the_subdomain_is_caught():
    found = lookalike("account-check.example", BRANDS, host="paypal.com.account-check.example")
    assert found is not None and found.how == "brand-in-subdomain"


@pytest.mark.parametrize("domain", ["paypal.com", "paypal.de", "microsoft.com", "docusign.net", "google.com",
                                    "opsweekly-news.example", "applebees.example", "amazonia-books.example"])
def test_a_brands_own_domains_and_unrelated_names_are_not_lookalikes(domain):
    assert lookalike(domain, BRANDS) is None


@needs_real
def test_no_domain_of_the_real_top_list_is_a_lookalike_of_its_brands():
    ranking = load_ranking(TRANCO)
    brands = brands_for(ranking, VerdictSettings())
    flagged = [d for d in ranking.top(2000) if lookalike(d, brands)]
    assert flagged == []


# -- the top-sites standing ------------------------------------------------------------------
def test_a_host_stands_where_its_registrable_domain_stands_but_user_content_does_not():
    settings = PopularSettings(path=TOP_SITES, cutoff=10)
    assert standing("https://login.microsoftonline.com/common/oauth2", settings).rank == 12
    assert standing("docs.google.com", settings).popular
    assert standing("fonts.googleapis.com", settings).rank == 13  # the platform's own service host
    assert rank_key("evil-site.web.app") == "evil-site.web.app"  # a customer's site is its own
    beyond = standing("paypal.com", settings)
    assert beyond.rank == 15 and not beyond.popular  # ranked, but outside the cut-off
    assert standing("192.0.2.4", settings).domain is None


def test_without_a_readable_list_the_standing_says_why():
    found = standing("paypal.com", PopularSettings(path=Path("/nonexistent/top.csv")))
    assert found.problem and "handrail popular refresh" in found.problem and not found.popular


def test_a_list_that_is_not_a_ranking_is_refused_with_its_line():
    with pytest.raises(RankingUnavailable, match="line 2"):
        parse_ranking(["1,google.com", "<html>oops</html>"], "x.csv")
    with pytest.raises(RankingUnavailable, match="no 'rank,domain' lines"):
        parse_ranking(["# empty"], "x.csv")


# -- the gate guardrails -----------------------------------------------------------------------
def _ctx(fact: dict) -> GuardrailContext:
    return GuardrailContext(popularity=fact)


def test_popular_domain_holds_inside_the_cutoff_and_when_the_list_is_missing():
    change = Change(kind="dns.sinkhole", target="linkedin.com")
    inside = popular_domain(change, {}, _ctx({"domain": "linkedin.com", "rank": 18, "cutoff": 10000, "source": "t"}))
    assert inside.outcome == Outcome.HOLD and "rank 18" in inside.reason
    assert popular_domain(change, {}, _ctx({"domain": "x.example", "rank": None, "cutoff": 10000})) is None
    assert popular_domain(change, {}, _ctx({"domain": "x.example", "rank": 20001, "cutoff": 10000})) is None
    missing = popular_domain(change, {}, _ctx({"problem": "the top-sites list t cannot be read"}))
    assert missing.outcome == Outcome.HOLD and "cannot be read" in missing.reason
    assert popular_domain(change, {}, _ctx({})).outcome == Outcome.HOLD  # no facts: fail safe


def test_confidence_holds_what_the_runbook_is_not_sure_of():
    medium = Change(kind="dns.sinkhole", target="a.example", params={"confidence": "medium", "evidence": "cta"})
    high = Change(kind="dns.sinkhole", target="a.example", params={"confidence": "high"})
    plain = Change(kind="dns.sinkhole", target="a.example")
    verdict = confidence(medium, {"at_least": "high"}, GuardrailContext())
    assert verdict.outcome == Outcome.HOLD and "medium" in verdict.reason and "cta" in verdict.reason
    assert confidence(high, {}, GuardrailContext()) is None
    assert confidence(plain, {}, GuardrailContext()) is None


# -- verdicts on our own sample mail ------------------------------------------------------------
EXPECTED = {  # file: (the domain to sinkhole or None, domains that must only be reported)
    "lookalike-login.eml": ("paypa1-login-verify.example", {"paypal.com", "paypalobjects.com"}),
    "wrapped-link.eml": ("micr0soft-365-password.example", {"microsoft.com"}),
    "newsletter.eml": (None, {"opsweekly-news.example", "linkedin.com", "twitter.com", "youtube.com"}),
    "html-only.eml": ("parcel-redelivery-fee.example", set()),
    "attachment-lure.eml": ("remit-docs-portal.example", set()),
    "mixed-brand.eml": ("docusign-envelope-review.example", {"docusign.com", "docusign.net"}),
}
SETTINGS = VerdictSettings(cutoff=10_000, brands=("handrail-corp",),
                           allowlist=("handrail-corp.example", "corp.example", "microsoft.com", "google.com"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_our_samples_get_the_verdicts_they_were_written_for(name):
    ranking = load_ranking(TOP_SITES)
    mail = parse_message((SAMPLES_DIR / name).read_bytes())
    judgement = judge(mail, ranking, SETTINGS)
    by_domain = {v.domain: v for v in judgement.domains}
    target, reported = EXPECTED[name]
    sinkholed = [v.domain for v in judgement.domains if v.action == "sinkhole"]
    assert sinkholed == ([target] if target else [])
    if target:
        assert by_domain[target].confidence == "high" and len(by_domain[target].evidence) >= 3
    for domain in reported:
        assert by_domain[domain].action == "report", by_domain[domain]
    for wrapper in judgement.wrappers:
        assert registrable_domain(wrapper) not in sinkholed


def test_the_wrapped_lure_is_judged_through_its_wrappers():
    mail = parse_message((SAMPLES_DIR / "wrapped-link.eml").read_bytes())
    judgement = judge(mail, load_ranking(TOP_SITES), SETTINGS)
    assert {"nam12.safelinks.protection.outlook.com", "urldefense.com", "www.google.com"} <= set(judgement.wrappers)
    assert [v.domain for v in judgement.domains if v.action != "report"] == ["micr0soft-365-password.example"]
    assert all(v.domain not in ("outlook.com", "urldefense.com") for v in judgement.domains)


def test_a_link_to_a_bare_ip_is_an_egress_candidate_with_evidence():
    mail = parse_message((SAMPLES_DIR / "html-only.eml").read_bytes())
    [ip] = judge(mail, load_ranking(TOP_SITES), SETTINGS).ips
    assert ip.ip == "192.0.2.45" and any("call-to-action" in e for e in ip.evidence)


def test_without_a_list_nothing_is_sinkholed_automatically():
    mail = parse_message((SAMPLES_DIR / "lookalike-login.eml").read_bytes())
    judgement = judge(mail, None, SETTINGS, ranking_problem="no list")
    assert [v.action for v in judgement.domains if v.confidence == "high"] == ["hold"]
    assert judgement.ranking_problem == "no list"


@pytest.mark.parametrize(("text", "cta"), [("Verify now", True), ("Pay the customs fee", True),
                                           ("Efetuar Pagamento", True), ("Unsubscribe", False),
                                           ("https://www.paypal.com/signin", False), ("Read the full issue", False)])
def test_calls_to_action(text, cta):
    assert is_call_to_action(text) is cta


# -- the dry run over the real corpus -----------------------------------------------------------
@needs_real
def test_triage_over_the_real_corpus_never_sinkholes_a_popular_domain_or_a_wrapper(tmp_path):
    from starter.cli import app

    policy = (ROOT / "policy.toml").read_text().replace(
        "[settings.popular]\n", f'[settings.popular]\npath = "{TRANCO}"\n', 1)
    (tmp_path / "policy.toml").write_text(policy)
    files = sorted(str(p) for p in (REAL / "phishing").glob("*.eml"))
    assert len(files) == 40
    env = {"HANDRAIL_POLICY": str(tmp_path / "policy.toml"), "HANDRAIL_HOME": str(tmp_path / "home")}
    result = CliRunner().invoke(app, ["phishing", "triage", "--json", *files], env=env)
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    ranking = load_ranking(TRANCO)
    acted = 0
    for message in document["messages"]:
        assert "rejected" not in message, message
        wrappers = {registrable_domain(h) for h in message["wrappers"]}
        for row in message["domains"]:
            if row["action"] == "report":
                continue
            acted += 1
            assert row["evidence"], row  # every sinkholed or held domain says why
            if row["action"] == "sinkhole":
                rank = ranking.rank(rank_key(url_host(row["url"])) or row["domain"])
                assert rank is None or rank > 10_000, row
                sender = registrable_domain(message["sender"].rpartition("@")[2]) or ""
                assert rank is None or row["domain"] != sender, row  # an abused, established sender
                assert row["domain"] not in wrappers and not is_wrapper(normalise_url(row["url"])), row
                assert row["verdict"] == "high" and row["score"] >= 4
            if row["action"] == "block_url":  # a popular platform: its pages, never the site
                assert row["rank"] is not None and row["rank"] <= 10_000 and row["verdict"] == "high", row
                for page in row["pages"]:
                    assert registrable_domain(url_host(page)) == row["domain"] and "#" not in page, row
                    assert urlsplit(page).path not in ("", "/"), row
                    assert not is_wrapper(page), row
            assert bool(row.get("pages")) == (row["action"] == "block_url"), row
        for ip in message["ips"]:
            assert ip["action"] == "hold" and ip["evidence"]
    assert acted >= 10  # the corpus is phishing: the judgement does act on it


# -- the CLI: popular check, triage on our own mail ----------------------------------------------
def _cli_env(tmp_path: Path, ranking: Path | None) -> dict[str, str]:
    policy = (ROOT / "policy.toml").read_text()
    if ranking is not None:
        policy = policy.replace("[settings.popular]\n", f'[settings.popular]\npath = "{ranking}"\n', 1)
    (tmp_path / "policy.toml").write_text(policy)
    return {"HANDRAIL_POLICY": str(tmp_path / "policy.toml"), "HANDRAIL_HOME": str(tmp_path / "home")}


def test_popular_check_says_where_a_domain_stands(tmp_path):
    from starter.cli import app

    env = _cli_env(tmp_path, TOP_SITES)
    inside = json.loads(CliRunner().invoke(app, ["popular", "check", "https://www.linkedin.com/in/x", "--json"],
                                           env=env).output)
    assert inside["domain"] == "linkedin.com" and inside["popular"] and not inside["automatic_sinkhole_allowed"]
    assert inside["page_block"] == "waits for a human"  # the site's own host
    bucket = json.loads(CliRunner().invoke(app, ["popular", "check", "https://storage.googleapis.com/b/x.html",
                                                 "--json"], env=env).output)
    assert bucket["popular"] and bucket["page_block"] == "automatic"  # a user-content platform's service host
    outside = json.loads(CliRunner().invoke(app, ["popular", "check", "paypa1.example", "--json"], env=env).output)
    assert outside["rank"] is None and outside["automatic_sinkhole_allowed"] and outside["page_block"] is None
    missing = json.loads(CliRunner().invoke(app, ["popular", "check", "paypa1.example", "--json"],
                                            env=_cli_env(tmp_path, None)).output)
    assert missing["problem"] and not missing["automatic_sinkhole_allowed"]


def test_popular_check_of_a_public_suffix_says_the_gate_refuses_it(tmp_path):
    """`co.uk` or `github.io` is no domain the phishing verdict decides: canonical_target denies
    its sinkhole or block in every mode, and the check says so (not "not a domain name")."""
    from starter.cli import app

    env = _cli_env(tmp_path, TOP_SITES)
    for name, owners in (("co.uk", "a registry's public suffix"), ("github.io", "a platform's public suffix")):
        doc = json.loads(CliRunner().invoke(app, ["popular", "check", name, "--json"], env=env).output)
        assert doc["public_suffix"] == name and not doc["automatic_sinkhole_allowed"], doc
        assert owners in doc["why"] and "canonical_target" in doc["why"], doc
        shown = CliRunner().invoke(app, ["popular", "check", name], env=env)
        assert shown.exit_code == 0 and "never sinkholes or blocks it" in shown.output
        assert "the phishing verdict decides" not in shown.output, shown.output
    tenant = json.loads(CliRunner().invoke(app, ["popular", "check", "someone.github.io", "--json"], env=env).output)
    assert "public_suffix" not in tenant and tenant["automatic_sinkhole_allowed"]  # one tenant is a site


def test_triage_of_our_samples_changes_nothing_and_holds_everything_without_a_list(tmp_path):
    from starter.cli import app

    files = sorted(str(p) for p in SAMPLES_DIR.glob("*.eml"))
    with_list = CliRunner().invoke(app, ["phishing", "triage", "--json", *files], env=_cli_env(tmp_path, TOP_SITES))
    assert with_list.exit_code == 0, with_list.output
    actions = {Path(m["file"]).name: sorted(r["domain"] for r in m["domains"] if r["action"] == "sinkhole")
               for m in json.loads(with_list.output)["messages"]}
    assert actions == {name: [target] if target else [] for name, (target, _) in EXPECTED.items()}
    without = CliRunner().invoke(app, ["phishing", "triage", "--json", *files], env=_cli_env(tmp_path, None))
    messages = json.loads(without.output)["messages"]
    assert all(m["ranking_problem"] for m in messages)
    assert not [r for m in messages for r in m["domains"] if r["action"] == "sinkhole"]
    usage = CliRunner().invoke(app, ["phishing", "triage", "--json", str(tmp_path / "nope.eml")])
    assert usage.exit_code == 2 and "Not a file" in json.loads(usage.output)["error"]


# -- intel: what the feeds already name is evidence ------------------------------------------
def test_names_the_intel_sync_blocks_are_evidence(tmp_path):
    import ipaddress

    from handrail.intel.sets import IndicatorSet
    from handrail.intel.state import IntelState
    from handrail.intel.store import IntelStore
    from handrail.runbooks.phishing.intel_named import named_by_intel

    assert named_by_intel(tmp_path / "intel.db", tmp_path / "store") == frozenset()  # no sync yet
    store = IntelStore(tmp_path / "store")
    state = IntelState(tmp_path / "intel.db", store)
    ip = int(ipaddress.ip_address("192.0.2.45"))
    state._set_applied("proxy.block", IndicatorSet.build([ip], [ip], domains=["parcel-redelivery-fee.example"],
                                                         urls=["https://remit-docs-portal.example/auth/post.php"]))
    state.close()
    named = named_by_intel(tmp_path / "intel.db", tmp_path / "store")
    assert {"parcel-redelivery-fee.example", "remit-docs-portal.example", "192.0.2.45"} <= named
    mail = parse_message((SAMPLES_DIR / "html-only.eml").read_bytes())
    judgement = judge(mail, load_ranking(TOP_SITES), SETTINGS, intel=named)
    [row] = [v for v in judgement.domains if v.domain == "parcel-redelivery-fee.example"]
    assert "named by the threat-intel feeds (parcel-redelivery-fee.example)" in row.evidence
    assert "named by the threat-intel feeds" in judgement.ips[0].evidence


def test_invalid_thresholds_are_a_policy_error_and_hostile_mail_is_cut():
    from handrail.gate.policy import PolicyError
    from handrail.runbooks.phishing.verdict import MAX_CANDIDATES

    with pytest.raises(PolicyError, match="invalid"):
        VerdictSettings.from_policy({"phishing": {"sinkhole_at": "many"}}, [])
    with pytest.raises(PolicyError, match="invalid"):
        PopularSettings.from_policy({"popular": {"cutoff": [1]}}, Path("/h"), Path("/p"))
    body = " ".join(f"https://lure-{i}.example/x" for i in range(MAX_CANDIDATES + 50))
    raw = (b"From: a@b.example\r\nTo: c@corp.example\r\nSubject: s\r\nMessage-ID: <m@b.example>\r\n\r\n"
           + body.encode())
    judgement = judge(parse_message(raw), load_ranking(TOP_SITES), SETTINGS)
    assert len(judgement.domains) == MAX_CANDIDATES and judgement.not_judged == 50


def test_a_redirect_parameter_does_not_launder_a_lure():
    raw = (b"From: desk@helpdesk-mail.example\r\nTo: c@corp.example\r\nSubject: s\r\nMessage-ID: <r@x.example>\r\n"
           b"Content-Type: text/html\r\n\r\n"
           b'<a href="https://sso-reset-portal.example/go?url=https%3A%2F%2Fwww.microsoft.com%2F">Verify now</a>')
    judgement = judge(parse_message(raw), load_ranking(TOP_SITES), SETTINGS)
    rows = {v.domain: v for v in judgement.domains}
    assert rows["sso-reset-portal.example"].action == "sinkhole"
    assert rows["microsoft.com"].action == "report"  # allowlisted, and popular


@needs_real
def test_ordinary_sites_are_rarely_taken_for_lookalikes():
    """Ranks 10,001-50,000 of the real list are real sites, not phishing: judged as if unranked,
    almost none may look like a brand (brand-owned ones such as payments-amazon.com may)."""
    from handrail.runbooks.phishing.lookalike import Brands

    ranking = load_ranking(TRANCO)
    brands = brands_for(ranking, VerdictSettings())
    as_unranked = Brands(brands.labels, frozenset(ranking.top(10_000)), brands.well_known)
    sites = sorted(d for d, rank in ranking.ranks.items() if rank > 10_000)[::4]  # 10,000 of them
    strong = [d for d in sites if (found := lookalike(d, as_unranked)) and found.strong]
    assert len(strong) < 0.005 * len(sites), strong[:20]


def test_popular_refresh_writes_the_list_and_fails_clearly_offline(tmp_path, monkeypatch):
    """One function with its network stubbed: the `tranco` package is replaced by a fake."""
    import sys
    import types

    from starter.cli import app

    class FakeList:
        def top(self, n):
            return ["google.com", "microsoft.com", "paypal.com"][:n]

    class FakeTranco:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

        def list(self):
            return FakeList()

    fake = types.ModuleType("tranco")
    fake.Tranco = FakeTranco
    monkeypatch.setitem(sys.modules, "tranco", fake)
    env = _cli_env(tmp_path, tmp_path / "popular.csv")
    done = CliRunner().invoke(app, ["popular", "refresh", "--json"], env=env)
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["domains"] == 3
    assert (tmp_path / "popular.csv").read_text().splitlines() == ["1,google.com", "2,microsoft.com", "3,paypal.com"]
    check = json.loads(CliRunner().invoke(app, ["popular", "check", "paypal.com", "--json"], env=env).output)
    assert check["rank"] == 3 and check["popular"]

    class Offline(FakeTranco):
        def list(self):
            raise ConnectionError("no route to host")

    fake.Tranco = Offline
    failed = CliRunner().invoke(app, ["popular", "refresh", "--json"], env=env)
    assert failed.exit_code == 1 and "could not be fetched" in json.loads(failed.output)["error"]
    assert (tmp_path / "popular.csv").read_text().startswith("1,google.com")  # the old list is kept


def test_a_plain_text_lure_with_one_destination_holds_for_a_human():
    raw = (b"From: alerts@bank-notice-mail.example\r\nTo: c@corp.example\r\nSubject: Account locked\r\n"
           b"Message-ID: <p@x.example>\r\n\r\nYour account is locked. Unlock it here:\r\n"
           b"https://unlock-portal-service.example/start\r\n")
    [row] = judge(parse_message(raw), load_ranking(TOP_SITES), SETTINGS).domains
    assert row.action == "hold" and "every link in the message leads here" in row.evidence


def test_a_ranked_service_sending_its_own_tracked_links_holds_instead_of_being_sinkholed():
    """Branded click tracking (the link shows the real site, goes through the sender's own
    redirect) is a mismatch by construction; on an established (ranked) sender it waits for a human."""
    ranking = parse_ranking(["1,google.com", "2,microsoft.com", "500,community-hub.example"], "test list")
    settings = VerdictSettings(cutoff=100, allowlist=("corp.example",))
    raw = (b"From: no-reply@notify.community-hub.example\r\nTo: c@corp.example\r\nSubject: New post\r\n"
           b"Message-ID: <n@community-hub.example>\r\nContent-Type: text/html\r\n\r\n"
           b'<a href="https://email.notify.community-hub.example/c/eJw0z8tu6yAUheGnwTNH3MxlwOBIk">'
           b"www.wallet-vendor.example</a>")
    [row] = judge(parse_message(raw), ranking, settings).domains
    assert row.domain == "community-hub.example" and row.confidence == "high"
    assert row.action == "hold" and any("abused service" in e for e in row.evidence)
    # the same message from an unranked sender's own domain is a lure: sinkholed
    unranked = raw.replace(b"community-hub.example", b"community-hub-mail.example")
    [row] = judge(parse_message(unranked), ranking, settings).domains
    assert row.domain == "community-hub-mail.example" and row.action == "sinkhole"
    # a ranked site the message only links to (not its sender) is sinkholed on the same evidence
    other = raw.replace(b"From: no-reply@notify.community-hub.example", b"From: x@sender-elsewhere.example")
    [row] = judge(parse_message(other), ranking, settings).domains
    assert row.domain == "community-hub.example" and row.action == "sinkhole"


# -- phishing on a popular platform: the page is blocked on the web proxy, the domain stays ----------
def _one_link(href: str, text: str = "View document", sender: str = "desk@notify-mailer.example") -> bytes:
    return (f"From: {sender}\r\nTo: c@corp.example\r\nSubject: s\r\nMessage-ID: <p@x.example>\r\n"
            f"Content-Type: text/html\r\n\r\n<p>Hello</p><a href=\"{href}\">{text}</a>").encode()


def _row(raw: bytes, domain: str):
    return {v.domain: v for v in judge(parse_message(raw), load_ranking(TOP_SITES), SETTINGS).domains}[domain]


def test_a_phishing_page_on_a_popular_platform_is_blocked_by_its_url_not_its_domain():
    row = _row(_one_link("https://user:pw@www.dropbox.com/s/q1w2e3/invoice.html?dl=0#alice@corp.example"),
               "dropbox.com")
    assert row.confidence == "high" and row.action == "block_url"
    # the page exactly: the query kept (never broader), the fragment and userinfo dropped (never sent)
    assert row.pages == ["https://www.dropbox.com/s/q1w2e3/invoice.html?dl=0"]
    # the site's own host: the page may be the site's own, so its block waits for a human
    assert not row.pages_on_platform and "waits for a human" in row.evidence[-1]


@pytest.mark.parametrize(("href", "domain"), [
    ("https://storage.googleapis.com/quota-fix/index.html#alice", "storage.googleapis.com"),
    ("https://firebasestorage.googleapis.com/v0/b/fix.appspot.com/o/index.html?alt=media",
     "firebasestorage.googleapis.com"),  # a storage service's compound host: ranked as the platform
])
def test_a_page_on_a_user_content_platforms_service_host_is_blocked_automatically(href, domain):
    row = _row(_one_link(href), domain)
    assert row.rank == 13 and row.action == "block_url"  # googleapis.com's rank: never sinkholed
    assert row.pages_on_platform and "user-content platform" in row.evidence[-1]
    assert row.pages == [href.partition("#")[0]]


def test_a_customer_site_named_like_a_service_stays_its_own():
    assert rank_key("secure-files.web.app") == "secure-files.web.app"
    assert rank_key("microsoft-login.web.app") == "microsoft-login.web.app"
    assert rank_key("firebasestorage.googleapis.com") == "googleapis.com"


@pytest.mark.parametrize(("href", "text", "action"), [
    ("https://www.dropbox.com/", "View document", "hold"),  # the front page is the site: nothing narrower
    ("https://www.dropbox.com/?ref=mail", "View document", "hold"),
    ("https://www.dropbox.com/s/q1w2e3/invoice.html", "our terms", "report"),  # no call to action: low
    ("https://mail.google.com/mail/u/0/#inbox", "View document", "report"),  # the company's allowlist
])
def test_a_popular_domain_without_a_page_to_block_holds_or_is_reported(href, text, action):
    domain = registrable_domain(url_host(normalise_url(href)))
    row = _row(_one_link(href, text), domain)
    assert row.action == action and row.pages == []


def test_a_popular_domain_at_medium_confidence_holds_instead_of_blocking_its_page():
    raw = _one_link("https://www.dropbox.com/s/q1w2e3/invoice.html", sender="share@dropbox.com")
    row = _row(raw, "dropbox.com")  # the sender's own domain: one point less
    assert row.confidence == "medium" and row.action == "hold" and row.pages == []


def test_only_the_pages_the_reader_is_sent_to_are_blocked():
    raw = (b"From: desk@notify-mailer.example\r\nTo: c@corp.example\r\nSubject: s\r\nMessage-ID: <q@x.example>\r\n"
           b"Content-Type: text/html\r\n\r\n"
           b'<img src="https://www.dropbox.com/assets/logo.png">'
           b'<a href="https://www.dropbox.com/s/aaa/one.html">Open the document</a>'
           b'<a href="https://www.dropbox.com/help/privacy">privacy</a>'
           b'<form action="https://www.dropbox.com/s/bbb/collect.php"><input name="p"></form>')
    row = _row(raw, "dropbox.com")
    assert row.action == "block_url"
    assert row.pages == ["https://www.dropbox.com/s/aaa/one.html", "https://www.dropbox.com/s/bbb/collect.php"]
    # every link leads there, none is a call to action (the intel feeds name the host): the pages
    # linked, never the fine print or the images
    raw = raw.replace(b">Open the document<", b">Document<").replace(b"<form", b"<div").replace(b"</form>", b"")
    judgement = judge(parse_message(raw), load_ranking(TOP_SITES), SETTINGS, intel=frozenset({"www.dropbox.com"}))
    [row] = [v for v in judgement.domains if v.domain == "dropbox.com"]
    assert row.action == "block_url" and row.pages == ["https://www.dropbox.com/s/aaa/one.html"]



def test_a_flood_of_mismatched_links_is_capped_and_still_judged():
    """Thousands of links showing paypal.com, each to another page: the parser keeps the first
    MAX_MISMATCHES distinct ones and the verdict keeps only the MAX_PAGES pages it proposes (every
    link once checked a growing list: quadratic), and the deception still counts."""
    from handrail.runbooks.phishing.mail import MAX_MISMATCHES
    from handrail.runbooks.phishing.verdict import MAX_PAGES

    anchors = b"".join(b'<a href="https://www.dropbox.com/s/%d/doc.html">paypal.com</a>' % i
                       for i in range(MAX_MISMATCHES + 100))
    raw = (b"From: desk@notify-mailer.example\r\nTo: c@corp.example\r\nSubject: s\r\nMessage-ID: <f@x.example>\r\n"
           b"Content-Type: text/html\r\n\r\n" + anchors + anchors)
    mail = parse_message(raw)
    assert len(mail.link_mismatches) == MAX_MISMATCHES
    assert len(set(mail.link_mismatches)) == MAX_MISMATCHES  # each once, though the flood is written twice
    row = _row(raw, "dropbox.com")
    assert "a link showing paypal.com leads here" in row.evidence
    assert row.action == "block_url" and len(row.pages) == MAX_PAGES


def test_a_script_or_an_image_url_is_never_a_page_to_block():
    """Pages are what a reader opens (links, forms); a kit's hidden jQuery on a platform's CDN is
    evidence about the message, never a URL to block for the whole company."""
    import base64

    jquery = "https://ajax.googleapis.com/ajax/libs/jquery/3.5.1/jquery.min.js"
    page = f"<script>$.getScript(atob('{base64.b64encode(jquery.encode()).decode()}'))</script>"
    raw = (b"From: hr@payroll-notice.example\r\nTo: c@corp.example\r\nSubject: s\r\nMessage-ID: <j@x.example>\r\n"
           b"Content-Type: text/html\r\n\r\n" + page.encode() + b'<img src="https://ajax.googleapis.com/x/logo.png">')
    row = _row(raw, "ajax.googleapis.com")
    assert row.confidence == "high"  # hidden, the only destination, not the sender's
    assert row.action == "hold" and row.pages == []  # popular, and no page a reader opens: a human decides
