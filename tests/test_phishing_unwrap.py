"""Link unwrapping: one realistic wrapped URL per rule of `unwrap.RULES`, nesting, and the
rule that a wrapper is never itself a target. Pure string work: nothing is fetched."""

from __future__ import annotations

import pytest

from handrail.runbooks.phishing.indicators import normalise_url
from handrail.runbooks.phishing.unwrap import RULES, is_wrapper, unwrap

pytestmark = pytest.mark.unit

# (rule name, wrapped URL as it appears in mail, destination it must unwrap to)
CASES = [
    ("Microsoft SafeLinks",
     "https://nam12.safelinks.protection.outlook.com/?url=https%3A%2F%2Fmicr0soft-365-password.example%2Fowa%2Freset"
     "%3Fuser%3Dkowens&data=05%7C02%7Ckowens%40corp.example%7C1c2d%7C0%7C0%7C638654%7CUnknown&sdata=Zm9vYmFy&reserved=0",
     "https://micr0soft-365-password.example/owa/reset?user=kowens"),
    ("Proofpoint urldefense v1",
     "https://urldefense.proofpoint.com/v1/url?u=http://invoice-share.example/doc.php&k=oIvRg1%2BdGAgOoM1BIlLLqw%3D%3D%0A"
     "&r=abc%3D%0A&m=def%3D%0A&s=0123",
     "http://invoice-share.example/doc.php"),
    ("Proofpoint urldefense v2",
     "https://urldefense.proofpoint.com/v2/url?u=https-3A__invoice-2Dshare.example_doc.php-3Fid-3D42"
     "&d=DwMFaQ&c=euGZstcaTDllvimEN8b7jXrwqOf-v5A_CdpgnVfiiMM&r=abc&m=def&s=ghi&e=",
     "https://invoice-share.example/doc.php?id=42"),
    ("Proofpoint urldefense v3",
     "https://urldefense.com/v3/__https://micr0soft-365-password.example/owa/reset?user=kowens__;!!Abc123xyz!Q1w2e3r4t5$",
     "https://micr0soft-365-password.example/owa/reset?user=kowens"),
    ("Mimecast URL protect",
     "https://protect-eu.mimecast.com/s/9sH1CVQ2nTkWq0?domain=parcel-redelivery-fee.example",
     "http://parcel-redelivery-fee.example/"),
    ("Symantec click-time",
     "https://clicktime.symantec.com/15sM5s1g8TwRJ6e2YvT7KpM?h=aBcD1234&u=https://secure.paypa1-login-verify.example/signin",
     "https://secure.paypa1-login-verify.example/signin"),
    ("Google redirect",
     "https://www.google.com/url?q=https://micr0soft-365-password.example/owa/reset&sa=D&source=editors"
     "&ust=1730625011000000&usg=AOvVaw0abc",
     "https://micr0soft-365-password.example/owa/reset"),
    ("Google ad click",
     "https://www.googleadservices.com/pagead/aclk?sa=L&ai=DChcSEwi5&ohost=www.google.com&cid=CAASJORo"
     "&sig=AOD64_3x&q&adurl=https://docusign-envelope-review.example/Signing/%3Fti%3D5d3b",
     "https://docusign-envelope-review.example/Signing/?ti=5d3b"),
    ("Facebook link shim",
     "https://l.facebook.com/l.php?u=https%3A%2F%2Fremit-docs-portal.example%2Fauth%2F&h=AT0x9dPqkLmN",
     "https://remit-docs-portal.example/auth/"),
    ("LinkedIn redirect",
     "https://www.linkedin.com/redir/redirect?url=https%3A%2F%2Fjob-offer-portal.example%2Fapply&urlhash=Xy1z"
     "&trk=public_profile",
     "https://job-offer-portal.example/apply"),
    ("Barracuda link protect",
     "https://linkprotect.cudasvc.com/url?a=https%3a%2f%2fshared-invoice-files.example%2finvoice.html"
     "&c=E,1,kX0pQ9z&typo=1",
     "https://shared-invoice-files.example/invoice.html"),
    ("Amazon SES click tracking",
     "https://a1b2c3d4.r.us-east-1.awstrack.me/L0/https:%2F%2Fwallet-unlock-support.example%2Fstart/1/"
     "0100018f2e6d-7c9b/abcDEF=353",
     "https://wallet-unlock-support.example/start"),
    ("Postmark click tracking",
     "https://click.pstmrk.it/3s/tax-refund-claim.example%2Fform/aBcD/eFgH/iJkL",
     "https://tax-refund-claim.example/form"),
]


@pytest.mark.parametrize(("rule", "wrapped", "destination"), CASES, ids=[c[0] for c in CASES])
def test_each_wrapper_rule_unwraps_a_real_shaped_url(rule, wrapped, destination):
    url = normalise_url(wrapped)
    assert url is not None and is_wrapper(url)
    result = unwrap(url)
    assert result.rules == [rule]
    assert result.url == normalise_url(destination)
    assert not result.opaque


OPAQUE = [
    ("ESP click tracking (destination not in the URL)",
     "https://u2918471.ct.sendgrid.net/ls/click?upn=u001.Yh2Kx-2FQ9mZ-2BqL7wA3dE&ZxY0=abc"),
    ("ESP click tracking (destination not in the URL)",
     "https://opsweekly.us21.list-manage.com/track/click?u=4b1f0c9e2d&id=77d2a1f0&e=5c1b9a"),
]


@pytest.mark.parametrize(("rule", "wrapped"), OPAQUE)
def test_esp_trackers_that_hide_the_destination_are_wrappers_never_targets(rule, wrapped):
    url = normalise_url(wrapped)
    result = unwrap(url)
    assert is_wrapper(url) and result.opaque and result.rules == [rule]


def test_every_rule_in_the_table_has_a_case():
    assert {rule.name for rule in RULES} == {case[0] for case in CASES} | {case[0] for case in OPAQUE}


def test_nested_wrappers_unwrap_recursively():
    inner = "https://urldefense.com/v3/__https://secure.paypa1-login-verify.example/signin__;!!T!x$"
    from urllib.parse import quote
    outer = normalise_url("https://eur01.safelinks.protection.outlook.com/?url="
                          + quote(inner, safe="") + "&reserved=0")
    result = unwrap(outer)
    assert result.url == "https://secure.paypa1-login-verify.example/signin"
    assert result.rules == ["Microsoft SafeLinks", "Proofpoint urldefense v3"]
    assert result.wrappers == ["eur01.safelinks.protection.outlook.com", "urldefense.com"]


def test_a_wrapper_without_a_readable_destination_is_opaque_and_still_a_wrapper():
    url = normalise_url("https://protect-us.mimecast.com/s/AbCdEfGhIj")
    result = unwrap(url)
    assert is_wrapper(url) and result.opaque


def test_a_plain_link_and_the_wrappers_own_pages_are_not_wrappers():
    for plain in ("https://www.paypal.com/signin", "https://www.mimecast.com/products/",
                  "https://www.google.com/search?q=https://x.example/", "https://www.linkedin.com/company/opsweekly"):
        url = normalise_url(plain)
        assert not is_wrapper(url)
    assert unwrap(normalise_url("https://www.paypal.com/signin")).url == "https://www.paypal.com/signin"


def test_an_unknown_redirector_is_followed_and_named():
    url = normalise_url("https://click.news-tracker.example/c?r=1&url=https%3A%2F%2Fparcel-redelivery-fee.example%2Fpay")
    result = unwrap(url)
    assert result.url == "https://parcel-redelivery-fee.example/pay"
    assert result.redirectors == ["click.news-tracker.example"] and result.wrappers == []


def test_hostile_input_stays_cheap():
    huge = normalise_url("https://nam12.safelinks.protection.outlook.com/?url=" + "a" * 100_000)
    assert unwrap(huge).opaque or unwrap(huge).url
    loop = normalise_url("https://r.example/?url=https://r.example/?url=https://r.example/")
    assert unwrap(loop).url  # same host: stop, no endless following
