"""Phishing judgement on mail shaped like real-world mail nobody had seen: rules that hold by
structure (ranking, who sent it, what the link carries), each with the failure it prevents.

Synthetic messages under reserved `.example` names; rankings are built inline. Nothing is
fetched or resolved.
"""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest

from handrail.gate.guardrails import confidence
from handrail.gate.models import Change, GuardrailContext, Outcome
from handrail.runbooks.phishing.addressed import address_forms, carries_address
from handrail.runbooks.phishing.mail import parse_message
from handrail.runbooks.phishing.popular import parse_ranking
from handrail.runbooks.phishing.verdict import VerdictSettings, judge

pytestmark = pytest.mark.unit

SETTINGS = VerdictSettings(cutoff=100, allowlist=("corp.example",))


def _html(sender: str, body: str, to: str = "alice@corp.example") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: s\r\nMessage-ID: <g@x.example>\r\n"
            f"Content-Type: text/html\r\n\r\n{body}").encode()


def _rows(raw: bytes, ranks: list[str]) -> dict:
    ranking = parse_ranking(["1,google.com", *ranks], "test list")
    return {v.domain: v for v in judge(parse_message(raw), ranking, SETTINGS).domains}


# -- a verdict that holds must hold in the run too, not only in the dry run --------------------------
async def _parsed_by_the_run(tmp_path, raw: bytes, ranks: str):
    """The run's parse activity (stand-in mailbox, the shipped policy with a list of ours)."""
    import activities.phishing as phishing
    from handrail.gate.policy import default_policy_path
    from handrail.intel.state import IntelState
    from handrail.intel.store import IntelStore
    from handrail.runbooks.phishing.rules import ParseRequest

    (tmp_path / "top.csv").write_text(ranks)
    policy = default_policy_path().read_text().replace(
        "[settings.popular]\n", f'[settings.popular]\npath = "{tmp_path / "top.csv"}"\n', 1)
    (tmp_path / "policy.toml").write_text(policy)

    class Mailbox:
        async def fetch_raw(self, mailbox_id):
            return raw

    store = IntelStore(tmp_path / "store")
    acts = phishing.PhishingActivities(SimpleNamespace(
        settings=SimpleNamespace(store_dir=tmp_path, policy_path=tmp_path / "policy.toml", home=tmp_path),
        tools=SimpleNamespace(mailbox=Mailbox()), ledger=None,
        intel=SimpleNamespace(store=store, state=IntelState(tmp_path / "intel.db", store))))
    return await acts.phishing_parse(ParseRequest(mailbox_id="MSG-1", run_id="r"))


async def test_a_held_high_verdict_reaches_the_gate_below_high(tmp_path):
    """A ranked sender's own tracked link (past the cut-off) is *high* but held. The run hands the
    gate the site's confidence; past the cut-off `popular_domain` does not hold, so a *high* one
    was sinkholed while `handrail phishing triage` said it waits for a human."""
    raw = _html("no-reply@notify.community-hub.example",
                '<a href="https://email.notify.community-hub.example/c/eJw0z8tu6yAU">www.wallet-vendor.example</a>')
    report = await _parsed_by_the_run(tmp_path, raw, "1,google.com\n20000,community-hub.example\n")
    [row] = report.verdicts
    assert (row.domain, row.verdict, row.action) == ("community-hub.example", "high", "hold")
    [site] = report.sites
    assert site.confidence == "medium"
    change = Change(kind="dns.sinkhole", target=site.domain, params={"confidence": site.confidence})
    assert confidence(change, {"at_least": "high"}, GuardrailContext()).outcome == Outcome.HOLD


# -- an e-mail marketing platform tracking the sender's own links -------------------------------------
TRACKED = ('<a href="https://trk.mail-clicks.example/ls/click?upn=u1.Xq8v">www.outdoor-shop.example</a>'
           '<a href="https://trk.mail-clicks.example/ls/click?upn=u1.Yr9w">Claim your reward</a>')


def test_a_ranked_site_that_the_senders_own_links_go_through_holds():
    """A link showing the sender's own site through a ranked third party is the sender's mail
    service tracking clicks (sinkholing it breaks every mail of every customer of that service)."""
    rows = _rows(_html("hello@outdoor-shop.example", TRACKED), ["5000,mail-clicks.example"])
    row = rows["mail-clicks.example"]
    assert row.confidence == "high" and row.action == "hold"
    assert any("tracking its clicks" in e for e in row.evidence)


def test_a_lure_showing_the_senders_site_through_an_unranked_domain_is_still_sinkholed():
    rows = _rows(_html("hello@outdoor-shop.example", TRACKED), [])  # a throwaway: not ranked
    assert rows["mail-clicks.example"].action == "sinkhole"
    # a ranked site showing *another* site than the sender's is deception: sinkholed as before
    other = TRACKED.replace("www.outdoor-shop.example", "www.wallet-vendor.example")
    rows = _rows(_html("hello@outdoor-shop.example", other), ["5000,mail-clicks.example"])
    assert rows["mail-clicks.example"].action == "sinkhole"


# -- an established site that is only linked to -------------------------------------------------------
SIGN = '<p>Please sign.</p><a href="https://secure.sign-service.example/public/widget?wid=1">Review and sign</a>'


def test_a_ranked_site_with_no_sign_of_deception_holds():
    """A real e-signature or shortener link from another sending domain is a button (2), the only
    destination (1) and not the sender's (1): high by points, yet nothing in it deceives."""
    rows = _rows(_html("sign@sign-mail.example", SIGN), ["5000,sign-service.example"])
    row = rows["sign-service.example"]
    assert row.confidence == "high" and row.action == "hold"
    assert any("no sign of deception" in e for e in row.evidence)


def test_deception_or_no_rank_still_sinkholes_without_a_human():
    assert _rows(_html("sign@sign-mail.example", SIGN), [])["sign-service.example"].action == "sinkhole"
    form = SIGN + '<form action="https://secure.sign-service.example/public/post.php"><input name="p"></form>'
    rows = _rows(_html("sign@sign-mail.example", form), ["5000,sign-service.example"])
    assert rows["sign-service.example"].action == "sinkhole"


# -- a link carrying the recipient's own address --------------------------------------------------------
@pytest.mark.parametrize("href", [
    "https://files-viewer.example/doc/index.html#alice@corp.example",
    "https://files-viewer.example/doc/?login=alice%40corp.example",
    "https://files-viewer.example/doc/#" + base64.b64encode(b"alice@corp.example").decode(),
    "https://files-viewer.example/doc/?e=" + base64.urlsafe_b64encode(b"alice@corp.example").decode().rstrip("=")
    + "&r=1",
])
def test_a_link_carrying_the_recipients_address_counts(href):
    """A kit pre-fills its login page with the victim's address: without the point this lure (no
    call to action the wording table knows) was only reported."""
    body = f'<a href="{href}">Shared file</a><a href="https://www.google.com/">google</a>'
    row = _rows(_html("share@notify-desk.example", body), [])["files-viewer.example"]
    assert any("recipient's own address" in e for e in row.evidence)
    assert row.score == 3 and row.action == "hold"


def test_the_senders_own_link_with_the_address_and_other_addresses_do_not_count():
    body = ('<a href="https://app.saas-vendor.example/login?email=alice@corp.example">Shared file</a>'
            '<a href="https://files-viewer.example/doc/#bob@corp.example">Shared file</a>'
            '<a href="https://list-mailer.example/unsub?e=alice@corp.example">Unsubscribe</a>')
    rows = _rows(_html("login@saas-vendor.example", body), [])
    assert not any("recipient" in e for e in rows["saas-vendor.example"].evidence)  # its own login link
    assert not any("recipient" in e for e in rows["files-viewer.example"].evidence)  # not a recipient
    assert not any("recipient" in e for e in rows["list-mailer.example"].evidence)  # the fine print
    assert address_forms(["a@b"]) == ()  # too short to mean anything
    assert not carries_address("https://x.example/", ())


# -- a message reported as an attachment is judged as the message it wraps -----------------------------
def _reported(inner: bytes) -> bytes:
    """What a "Report phishing" button sends the phishing mailbox: the original, attached."""
    return (b"From: Alice <alice@corp.example>\r\nTo: phishing-report@corp.example\r\nSubject: Report\r\n"
            b"Message-ID: <rep@corp.example>\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="r"\r\n\r\n'
            b"--r\r\nContent-Type: text/plain\r\n\r\nReported via the button.\r\n"
            b'--r\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename="orig.eml"\r\n\r\n'
            + inner + b"\r\n--r--\r\n")


def test_a_reported_message_is_judged_with_its_own_sender_and_recipients():
    """The reporter is not who sent the lure: judged with the reporter's domain, the sender's own
    tracked links looked like deception (sinkholed) and the recipient's address was never seen."""
    tracked = _reported(_html("hello@outdoor-shop.example", TRACKED, to="bob@corp.example"))
    mail = parse_message(tracked)
    assert mail.sender == "alice@corp.example" and mail.judged_sender() == "hello@outdoor-shop.example"
    assert mail.judged_recipients() == ["alice@corp.example", "bob@corp.example"]  # and who reported it
    rows = _rows(tracked, ["5000,mail-clicks.example"])
    assert rows["mail-clicks.example"].action == "hold"
    body = '<a href="https://files-viewer.example/doc/#bob@corp.example">Shared file</a><a href="https://www.google.com/">g</a>'
    rows = _rows(_reported(_html("share@notify-desk.example", body, to="bob@corp.example")), [])
    assert any("recipient's own address" in e for e in rows["files-viewer.example"].evidence)
    # a message that wraps none (or several) is judged with its own headers
    plain = parse_message(_html("hello@outdoor-shop.example", TRACKED))
    assert plain.reported_sender is None and plain.judged_sender() == "hello@outdoor-shop.example"


# -- one customer's host below an established domain, not the whole platform --------------------------
BUILDER = ('<a href="https://acme-support.site-builder.example/login">https://www.acme.example/login</a>'
           '<a href="https://www.acme.example/">acme</a>')


async def test_below_a_ranked_domain_the_sinkhole_takes_the_one_host_linked(tmp_path):
    """A lure on one customer's subdomain of a site-builder or portal platform that the public-suffix
    list does not know: sinkholing the registrable domain took down every customer's site."""
    rows = _rows(_html("it@acme-desk.example", BUILDER), ["5000,site-builder.example"])
    row = rows["site-builder.example"]
    assert row.action == "sinkhole" and row.target == "acme-support.site-builder.example"
    assert any("takes acme-support.site-builder.example only" in e for e in row.evidence)
    report = await _parsed_by_the_run(tmp_path, _html("it@acme-desk.example", BUILDER),
                                      "1,google.com\n20000,site-builder.example\n")
    assert [s.domain for s in report.sites] == ["acme-support.site-builder.example"]


def test_an_unranked_domain_or_its_www_host_is_sinkholed_whole():
    rows = _rows(_html("it@acme-desk.example", BUILDER), [])  # the attacker's own: every subdomain
    assert rows["site-builder.example"].target == "site-builder.example"
    www = BUILDER.replace("acme-support.site-builder", "www.site-builder")
    rows = _rows(_html("it@acme-desk.example", www), ["5000,site-builder.example"])
    assert rows["site-builder.example"].target == "site-builder.example"


def _eml_attached(inner: bytes, name: str = "suspicious.eml", count: int = 1) -> bytes:
    """A report with the original saved as a file and attached as application/octet-stream."""
    part = (b'--r\r\nContent-Type: application/octet-stream; name="' + name.encode() + b'"\r\n'
            b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment\r\n\r\n"
            + base64.encodebytes(inner) + b"\r\n")
    return (b"From: Alice <alice@corp.example>\r\nTo: phishing-report@corp.example\r\nSubject: FW\r\n"
            b'Message-ID: <fw@corp.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="r"\r\n\r\n'
            b"--r\r\nContent-Type: text/plain\r\n\r\nReporting this one.\r\n" + part * count + b"--r--\r\n")


def test_an_eml_file_attached_as_octet_stream_is_read_as_the_reported_message():
    """Saved and attached as a file, the reported message's links were never read: nothing judged."""
    lure = _html("share@notify-desk.example", '<a href="https://files-viewer.example/doc/">Verify now</a>',
                 to="bob@corp.example")
    mail = parse_message(_eml_attached(lure))
    assert "https://files-viewer.example/doc/" in mail.urls
    assert mail.judged_sender() == "share@notify-desk.example"
    assert mail.judged_recipients() == ["alice@corp.example", "bob@corp.example"]
    assert [a.filename for a in mail.attachments] == ["suspicious.eml"]  # still hashed as the file it is
    several = parse_message(_eml_attached(lure, count=5))
    assert several.reported_sender is None  # several reported messages: none of them is "the" sender


def test_an_attachment_that_is_not_a_message_or_cannot_be_walked_stays_a_file():
    pdf = _eml_attached(b"%PDF-1.7\r\n1 0 obj << /Type /Catalog >>\r\nendobj\r\n", name="scan.pdf")
    assert parse_message(pdf).reported_sender is None
    from handrail.runbooks.phishing.hostile import corpus

    many = corpus()["many-parts"]  # more MIME parts than a message may have: rejected on its own
    mail = parse_message(_eml_attached(many))  # the report is still read; the file stays a file
    assert mail.sender == "alice@corp.example" and [a.filename for a in mail.attachments] == ["suspicious.eml"]


async def test_the_run_watches_the_lures_recipients_not_the_phishing_mailbox(tmp_path):
    """The run raises telemetry on the recipients' devices: for a report, those were the phishing
    mailbox's (unmapped), never the colleagues who had the lure."""
    report = await _parsed_by_the_run(tmp_path, _reported(_html("share@notify-desk.example", "<p>hi</p>",
                                                                 to="bob@corp.example")), "1,google.com\n")
    assert report.recipients == ["alice@corp.example", "bob@corp.example"]


# -- a page on a platform's own suffix host (path-style buckets) ---------------------------------------
BUCKET_PAGE = "https://s3.amazonaws.com/invoice-docs-7731/login.html"


@pytest.mark.parametrize("ranks", [["50,amazonaws.com"], []], ids=["platform ranked", "platform unranked"])
def test_a_page_on_a_platforms_own_suffix_host_is_blocked_by_its_url_never_the_host(ranks):
    """``s3.amazonaws.com`` is itself a public suffix (every bucket is a customer's): its links used
    to vanish from the parse. The page the lure sends the reader to is blocked; the host never is."""
    raw = _html("billing@invoices-portal.example",
                f'<p>Your invoice is ready.</p><a href="{BUCKET_PAGE}">View invoice</a>')
    rows = _rows(raw, ranks)
    row = rows["s3.amazonaws.com"]
    assert row.action == "block_url" and row.pages == [BUCKET_PAGE] and row.pages_on_platform, row
    assert "blocked on the web proxy" in row.line()


def test_a_platforms_own_host_is_ranked_as_the_platform():
    from handrail.runbooks.phishing.popular import platform_host, rank_key

    assert rank_key("s3.amazonaws.com") == "amazonaws.com" and platform_host("s3.amazonaws.com")
    assert rank_key("evil.github.io") == "evil.github.io" and not platform_host("evil.github.io")
