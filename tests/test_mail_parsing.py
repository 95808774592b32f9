"""Phishing-mail parsing: real honeypot samples (read in place, never fetched) and
hand-made hard cases.

The expected URL sets below were written by reading each sample's decoded text and
HTML parts offline (Python's ``email`` module, printing the bodies) and listing what a
careful reader finds as links: ``href``/``src``-style attributes, URLs in visible text,
in CSS ``url(...)`` and in scripts. Scheme-relative ``//host/path`` sources count as
``http://``. XML namespaces and DOCTYPE identifiers are not links.
"""

from __future__ import annotations

import os
import socket
from email.message import EmailMessage
from pathlib import Path

import pytest

from handrail import suffixes
from handrail.runbooks.phishing import indicators
from handrail.runbooks.phishing.mail import LinkMismatch, MalformedMessage, ParsedMessage, parse_message

pytestmark = pytest.mark.unit

FIXTURES = Path(
    os.environ.get("HANDRAIL_FIXTURES")
    or Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "real"
)
PHISHING = FIXTURES / "phishing"
needs_fixtures = pytest.mark.skipif(
    not PHISHING.is_dir(), reason=f"fixture folder {PHISHING} is absent"
)
SAMPLES = sorted(PHISHING.glob("*.eml")) if PHISHING.is_dir() else []


def parse_sample(name: str) -> ParsedMessage:
    return parse_message((PHISHING / f"{name}.eml").read_bytes())


# --- every sample ------------------------------------------------------------------


@needs_fixtures
def test_the_fixture_folder_holds_the_forty_samples():
    assert len(SAMPLES) == 40


@needs_fixtures
@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_parses_and_keeps_the_invariants(path: Path):
    mail = parse_message(path.read_bytes())
    assert isinstance(mail.subject, str)
    assert mail.size == path.stat().st_size
    assert mail.urls == sorted(set(mail.urls))
    assert mail.domains == sorted(set(mail.domains))
    for url in mail.urls:
        assert url.split(":", 1)[0] in {"http", "https", "ftp"}, url
        host = indicators.url_host(url)
        assert host in mail.domains or host in mail.ips, url
    for domain in mail.domains:
        assert domain.isascii() and domain == domain.lower(), domain
        assert indicators.registrable_domain(domain), f"{domain} has no public suffix"
    for mismatch in mail.link_mismatches:
        assert mismatch.href_url in mail.urls
        assert indicators.url_host(mismatch.text_url) in mail.domains + mail.ips
    for attachment in mail.attachments:
        assert len(attachment.sha256) == 64
    assert all(r == r.lower() for r in mail.recipients)


@needs_fixtures
def test_nothing_is_fetched_or_resolved(monkeypatch: pytest.MonkeyPatch):
    def refuse(*args, **kwargs):
        raise AssertionError("parsing tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "gethostbyname", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    suffixes.extractor.cache_clear()  # the suffix list is loaded under the guard too
    for path in SAMPLES:
        assert parse_message(path.read_bytes()).message_id


# --- hand-checked samples ----------------------------------------------------------


@needs_fixtures
def test_plain_text_base64_body():  # sample-325: text/plain, base64
    assert parse_sample("sample-325").urls == ["http://lovesexadventure.space/sexxys"]


@needs_fixtures
def test_plain_text_7bit_body_with_bare_domain():  # sample-5908
    mail = parse_sample("sample-5908")
    assert mail.urls == [
        "https://www.berenicestore.it/wp-login.php",
        (
            "https://www.berenicestore.it/wp-login.php?login=www.dryyue.blogspot.jp"
            "%20-%20138%20788%20USD%20BINANCE&key=w50L2sgj20ks3JazL8xm&action=rp"
        ),
    ]
    assert "www.dryyue.blogspot.jp" in mail.domains  # "Nome utente: www.dryyue..."
    assert "berenicestore.it" in mail.domains


@needs_fixtures
def test_plain_text_without_links_finds_no_domain_in_prose():  # sample-1645, QP
    mail = parse_sample("sample-1645")
    # "Mr.Wood Forest" is a name and mywoodforestbiz.7@gmail.com is a mailbox.
    assert mail.urls == [] and mail.domains == []
    assert mail.reply_to == "mywoodforestbiz.7@gmail.com"


@needs_fixtures
def test_html_only_base64_with_wrapped_href():  # sample-4734
    mail = parse_sample("sample-4734")
    assert mail.urls == ["https://boxaw.buscaeuhgwcep.biz.ua/1/h.php?cid=rodrigo-f-p@hotmail.com"]
    assert mail.domains == ["boxaw.buscaeuhgwcep.biz.ua", "buscaeuhgwcep.biz.ua"]


@needs_fixtures
def test_html_only_quoted_printable():  # sample-5193
    assert parse_sample("sample-5193").urls == ["https://juliodedansk.icu/"]


@needs_fixtures
def test_userinfo_trick_keeps_the_real_host():  # sample-4517: href split over two lines
    mail = parse_sample("sample-4517")
    assert mail.urls == [
        (
            "https://www.google.com.br-pt-detrancnh3595677635956776@hajuhahasi.in.ua/"
            "?=%25rand9%25/?email=rodrigo-f-p@hotmail.com&pedido=BR741392&token=%randomToken%"
        )
    ]
    assert mail.domains == ["hajuhahasi.in.ua"]


@needs_fixtures
def test_link_text_differs_from_href_base64():  # sample-5015
    mail = parse_sample("sample-5015")
    assert set(mail.urls) == {
        "https://detran.gov.br/",
        "https://fonts.googleapis.com/css2?family=Product+Sans:wght@400&display=swap",
        "https://function-7-961349030461.us-central1.run.app/",
    }
    assert mail.link_mismatches == [
        LinkMismatch(
            text_url="https://detran.gov.br/",
            href_url="https://function-7-961349030461.us-central1.run.app/",
        )
    ]
    assert mail.subject == "Alerta: Infração de Trânsito Associada à Sua CNH! Registro: 43078932."


@needs_fixtures
@pytest.mark.parametrize(
    ("name", "text_url", "href_prefix"),
    [
        ("sample-247", "https://www.norton.com/globalsupport", "https://secure.norton.com/pub/cc?"),
        (
            "sample-6076",
            "https://www.ledger.com/wallet/device-verify",
            "https://email.notification.circle.so/c/",
        ),
        (
            "sample-6245",
            "https://billing.spotify.com/account/payment/update",
            "https://email.notification.circle.so/c/",
        ),
        # href=3D"..." left by a quoted-printable body labelled 8bit; text "garagiste.com"
        ("sample-7068", "http://garagiste.com/", "https://mandrillapp.com/track/click/"),
    ],
)
def test_link_mismatches_in_samples(name: str, text_url: str, href_prefix: str):
    mismatches = parse_sample(name).link_mismatches
    assert [(m.text_url, m.href_url[: len(href_prefix)]) for m in mismatches] == [
        (text_url, href_prefix)
    ]


@needs_fixtures
def test_calendar_attachment():  # sample-2638: the .ics has only a mailto organiser
    mail = parse_sample("sample-2638")
    # The three links are long tracking URLs; their starts are what a reader checks.
    assert [u[:48] for u in mail.urls] == [
        "https://bhheiia.r.bh.d.sendibt3.com/im/1774880/0",
        "https://click.pstmrk.it/3s/url3875.outgrowmail.a",
        "https://url3875.outgrowmail.app/ls/click?upn=zLh",
    ]
    assert len(mail.urls) == 3
    assert [(a.filename, a.content_type, a.size) for a in mail.attachments] == [
        ("Appointment.ics", "text/calendar", 674)
    ]
    assert not any("newcupon" in d for d in mail.domains)  # mailto organiser ignored


@needs_fixtures
def test_html_attachment_is_read():  # sample-896
    mail = parse_sample("sample-896")
    assert mail.urls == ["https://get-free-btc.hb.bizmrg.com/index.html#23786447863164"]
    assert [(a.filename, a.content_type, a.size) for a in mail.attachments] == [
        ("GET Bitcoin 34.html", "text/html", 275)
    ]


@needs_fixtures
def test_html_attachment_hidden_in_document_write_unescape():  # sample-1133
    mail = parse_sample("sample-1133")
    assert set(mail.urls) == {
        "https://aadcdn.msauth.net/ests/2.1/content/images/favicon_a_eupayfgghqiai7k9sol6lg2.ico",
        "https://ajax.googleapis.com/ajax/libs/jquery/2.2.4/jquery.min.js",
        "https://code.jquery.com/jquery-3.2.1.slim.min.js",
        "https://ctdiaus.co/wp-file/cache/scripts.js",
        "https://fonts.googleapis.com/css?family=Archivo+Narrow&display=swap",
        "https://l2.io/ip.js?var=userip",
        (
            "https://logincdn.msauth.net/shared/1.0/content/images/backgrounds/"
            "2_bc3d32a696895f78c19df6c717586a5d.svg"
        ),
        "https://maxcdn.bootstrapcdn.com/bootstrap/4.0.0/css/bootstrap.min.css",
        "https://palestinohistorico.cl/wp-admin/images/microsoft_logo.svg",  # commented out
        "https://palestinohistorico.cl/wp-admin/images/success.PNG",
        "https://use.fontawesome.com/releases/v5.7.0/css/all.css",
    }
    assert mail.attachments[0].filename == "Confirmação de pagamento.html"  # RFC 2047 name
    assert mail.subject == "Cópia de confirmação de EFT de pagamento 099DA 21 Aug 2023"


@needs_fixtures
def test_pdf_attachment_is_hashed_and_only_its_link_annotation_read():  # sample-1968, koi8-r subject
    mail = parse_sample("sample-1968")
    assert mail.urls[0] == "https://aka.ms/AAb9ysg"
    [pdf_link] = [link for link in mail.links if link.kind == "pdf"]  # the lure's button
    assert mail.urls[1:] == [pdf_link.url] and pdf_link.url.startswith("https://script.google.com/macros/s/")
    assert [(a.filename, a.content_type, a.size) for a in mail.attachments] == [
        ("Statement.pdf", "application/pdf", 31519)
    ]
    # Cyrillic look-alikes survive the koi8-r decoding: а, о are U+0430, U+043E.
    assert mail.subject == (
        "Fwd: Reminder: Your Am\u0430zon acc\u043eunt is temp\u043erarily on h\u043eld "
        "[Case-ID: 4071540512]"
    )


@needs_fixtures
def test_multipart_digest():  # sample-3840: tracking pixel on an IP, //scheme-relative
    mail = parse_sample("sample-3840")
    assert set(mail.urls) == {
        "http://162.0.228.240/track/3nDanQ4961oCZL19nhdsvapwdf308XHYAPOMBGVRVPQZ707VGCW1884077k17",
        "http://162.0.228.240/track/3GWdZP4961hHDv19mcsfdgexjc308ROXTXZZJPNZRVZE707HKQY1884077B17",
        "https://t.co/A1CT23a3FZ",
        "https://t.co/8acujdgfFK",
        "https://zupimages.net/up/24/31/qfiv.png",
        "http://zupimages.net/up/24/31/qfiv.png",
        "https://zupimages.net/up/23/36/uynh.png",
    }
    assert mail.ips == ["162.0.228.240"]
    assert mail.domains == ["t.co", "zupimages.net"]


@needs_fixtures
def test_multipart_report_with_8bit_plus_encoding():  # sample-6226
    mail = parse_sample("sample-6226")
    assert set(mail.urls) == {
        "http://45.133.74.33/track/3zhgoI415YuAZ104oyuwmorsmp37CDVDBIWGIVYAJQZ1115047XEXP877H4",
        (
            "https://storage.googleapis.com/nolimitess/azf3.html"
            "#4OyEXI415urHB104kwbgmmgkns37TZROEFASHKPFGEW1115047MQQY877A4"
        ),
        (
            "https://storage.googleapis.com/nolimitess/azf3.html"
            "#5liRfQ415rXBa104viybtxddvy37JFWJTPEUJPENNTM1115047CIIV877P4"
        ),
        "https://zupimages.net/up/25/47/l3h1.png",
        "http://zupimages.net/up/25/47/l3h1.png",
    }
    assert mail.ips == ["45.133.74.33"]


@needs_fixtures
def test_multipart_signed():  # sample-5856
    mail = parse_sample("sample-5856")
    assert set(mail.urls) == {
        "http://peachtales12.us.com/4Dvztm1964OGEh1199ptizaiyvey4221ELZYYMYVECBXBXQ34138QOGB231349k15",
        "http://peachtales12.us.com/4vNRqn1964LXrG1199qnksjsbqid4221KOFELGJZWSQJQGF34138OQTU231349l15",
        "http://peachtales12.us.com/5wzppP1964dmdd1199ifrnqcshwz4221HISACYESWUQNIOC34138MFMI231349m15",
        (
            "http://peachtales12.us.com/track/"
            "3erCMA1964Eyrg1199irzymwurwp4221UKKYTYGHKUHWJFV34138GLCS231349i15"
        ),
        "https://account.live.com/SecurityNotifications/Update.sf20aUTG",
        "https://account.microsoft.com/activity.phishing@pot",
        "https://go.microsoft.com/fwlink/?LinkId=YM1inX2M",
        "https://s3.iimg.su/s/22/th_uxRF1IKxNNkYbdObR1M8XIu2teC00GV2uWuY8rSP.png",  # CSS url()
        "https://s3.iimg.su/s/22/uBZQ5P8xbIfiK1czMXhSZIroZdk2CVak9VapRJcs.png",
    }
    # Raw UTF-8 in the Subject header (not RFC 2047) is still read as UTF-8.
    assert mail.subject.startswith("Re: \U0001f6a8We C.a.l.l.e.d You 3 Times")


@needs_fixtures
def test_defanged_domain_in_html():  # sample-1894: "Discover <b>NOBUX(.)SK</b>"
    mail = parse_sample("sample-1894")
    assert mail.urls == []
    assert mail.domains == ["nobux.sk"]


@needs_fixtures
def test_attachment_names_and_empty_bodies():  # sample-7287
    mail = parse_sample("sample-7287")
    assert mail.urls == [
        "http://www.goldent.com/",
        (
            "https://www.ajvingenieria.com/billing/subscriptions/"
            "?src=live.comZORUDIcCo8NMUBJkh9hvoYwsdO0Xj6LZh0aS2B0F3rU"
        ),
    ]
    assert "mail-tester.com" in mail.domains  # "Use a service like mail-tester.com"
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert [(a.filename, a.size, a.sha256) for a in mail.attachments] == [
        ("Inbox Rules", 0, empty),
        ("carddav-toptvagu.mobileconfig", 0, empty),
        ("email-toptvagu.mobileconfig", 0, empty),
    ]


@needs_fixtures
def test_windows_1252_subject():  # sample-248
    mail = parse_sample("sample-248")
    assert mail.subject == "ENC: \u201c#Get Straight #Teeth from Home\u201d"
    assert mail.urls == ["http://bit.ly/3Gnso9p", "http://bit.ly/3VXwNFQ"]


@needs_fixtures
def test_utf8_b_subject():  # sample-7764
    mail = parse_sample("sample-7764")
    assert mail.subject == "Ihre Auszahlung von 1.000 \u20ac kann best\u00e4tigt werden \U0001f4b6"
    assert mail.urls == [
        "http://i.imgur.com/b7sejxW.png",
        "https://i.imgur.com/b7sejxW.png",
        "https://worldwidesupp.com/4qYGCg46220JEHKO966Wewe0CLu0UNgo0yxzD4",
        "https://worldwidesupp.com/6oXQOi46220yNylO966iEqc0UnW0SphV0jeVU4",
    ]


@needs_fixtures
def test_utf8_q_subject():  # sample-7136
    mail = parse_sample("sample-7136")
    assert mail.subject == (
        "\U0001f525 Claim Your 400% Mega Bonus + 100 Free Spins \u2013 Limited Time Only!"
    )
    base = "http://quibusdam.sa.com/"
    cdn = "http://cdn.mcauto-images-production.sendgrid.net/6a583904b7e21994/"
    assert mail.urls == [
        cdn + "1de27630-9254-48a5-9096-1523c3c0a2f7/1200x583.png",
        cdn + "cb9a9237-3864-4383-b7c2-a934ab1159dc/600x800.png",
        base + "4AgEuA7186uvHG580sbsiljcspz84UHEZKLACLVSIWOB26106OGHV596777O4",
        base + "4CWyya7186povU580qfrzikzbgp84XCBFKYWLITTVZAO26106XLZB596777J4",
        base + "4paCzH7186fmOj580aorrvkxzah84VZLYNVXNSAYNAHH26106OULP596777a4",
        base + "4rhAFx7186ymWs580tyrfoqkedq84QXICFQEGQZWPEMM26106RSYL596777K4",
        base + "t/5iNnVE7186itET580nqruxlausv84XBNLZJKTIMXIUYZ26106JSOC596777R4",
        base + "track/3UBcMZ7186UWhD580oceptnphei84CGLFYVHZYUAVWHU26106PFYX596777U4",
    ]


@needs_fixtures
def test_many_urls():  # sample-44: a newsletter template with 100+ links
    mail = parse_sample("sample-44")
    assert len(mail.urls) == 127
    assert {
        "http://eepurl.com/hZcIt1",
        "https://www.theguardian.com/world/2022/apr/08/kramatorsk-train-station-ukraine-russia-rockets",
        "https://www.thenewhumanitarian.org/",
        (
            "https://www.thenewhumanitarian.org/news/2022/1/21/"
            "Contactless-aid-Syria-snow-Doomsday-Clock-Cheat-Sheet"
        ),
        "https://fonts.gstatic.com/s/roboto/v18/KFOmCnqEu92Fr1Mu4mxK.woff2",  # CSS url(...)
    } <= set(mail.urls)
    hosts = {indicators.url_host(u) for u in mail.urls}
    assert "thenewhumanitarian.us12.list-manage.com" in hosts


@needs_fixtures
def test_raw_8bit_headers_are_read_as_utf8():  # sample-4517
    mail = parse_sample("sample-4517")
    assert mail.subject.startswith("Atenção! Sua CNH está temporariamente suspensa")


# --- hand-made hard cases ----------------------------------------------------------


def plain(body: str, **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = headers.get("sender", "Mallory <Mallory@Evil.Example>")
    msg["To"] = "Victim@Corp.Example, other@corp.example"
    msg["Subject"] = headers.get("subject", "test")
    if "message_id" in headers:
        msg["Message-ID"] = headers["message_id"]
    msg.set_content(body)
    return msg.as_bytes()


def html(markup: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "a@b.example"
    msg["Subject"] = "html"
    msg.set_content(markup, subtype="html")
    return msg.as_bytes()


def test_defanged_urls_and_domains():
    mail = parse_message(
        plain(
            "Log in at hxxps://login[.]evil[.]com/verify?id=1 or hxxp://bad(.)com[:]8080/x.\n"
            "Also hxxps[:]//phish[dot]co[.]uk/a, and the shop NOBUX(.)SK or example[.]com.\n"
            "Not domains: invoice.pdf, version 1.5, notes.md, your account.Click here.\n"
        )
    )
    assert mail.urls == [
        "http://bad.com:8080/x",
        "https://login.evil.com/verify?id=1",
        "https://phish.co.uk/a",
    ]
    assert mail.domains == [
        "bad.com",
        "evil.com",
        "example.com",
        "login.evil.com",
        "nobux.sk",
        "phish.co.uk",
    ]


def test_idn_host_is_stored_as_idna_ascii():
    mail = parse_message(plain("Buy at http://bücher.example/ and HTTP://Bücher.Example:80/Ä"))
    assert mail.urls == ["http://xn--bcher-kva.example/", "http://xn--bcher-kva.example/%C3%84"]
    assert mail.domains == ["xn--bcher-kva.example"]


def test_html_only_message_with_mismatched_link_text():
    mail = parse_message(
        html(
            '<p>Dear customer,</p><a href="https://evil.example.net/login">'
            "https://www.paypal.com/signin</a>"
            '<a href="https://paypal.com/">www.paypal.com</a>'  # same site: not a mismatch
            '<a href="mailto:help@paypal.com">help</a> <a href="cid:logo">x</a>'
            '<img src="data:image/png;base64,AAAA"> <a href="tel:+123">call</a>'
            '<img src="//cdn.example.org/p.gif" style="background:url(\'https://img.example.org/b.png\')">'
            "<script>var u = 'https://c2.example.com/gate.php';</script>"
        )
    )
    assert mail.urls == [
        "http://cdn.example.org/p.gif",
        "https://c2.example.com/gate.php",
        "https://evil.example.net/login",
        "https://img.example.org/b.png",
        "https://paypal.com/",
        "https://www.paypal.com/signin",
    ]
    assert mail.link_mismatches == [
        LinkMismatch(
            text_url="https://www.paypal.com/signin", href_url="https://evil.example.net/login"
        )
    ]
    assert "paypal.com" in mail.domains and not any("mailto" in u for u in mail.urls)


def test_headers_addresses_and_message_id():
    raw = plain(
        "no links",
        sender='"Bank  Support" <Alerts@Bank.Example>',
        subject="=?koi8-r?B?8NLJ18XU?= =?utf-8?Q?caf=C3=A9?=",
        message_id="  <ABC@host.example>  ",
    )
    mail = parse_message(raw)
    assert mail.message_id == "ABC@host.example"
    assert (mail.sender, mail.sender_display) == ("alerts@bank.example", "Bank Support")
    assert mail.recipients == ["other@corp.example", "victim@corp.example"]
    assert mail.subject == "Приветcafé"
    assert mail.date is None and mail.reply_to is None


def test_missing_message_id_gets_a_stable_hash():
    raw = plain("hello")
    first, second = parse_message(raw), parse_message(raw)
    assert first.message_id.startswith("sha256:") and first.message_id == second.message_id


def test_oversized_message_is_rejected_with_the_limit():
    raw = plain("x" * (5 * 1024 * 1024))
    with pytest.raises(MalformedMessage) as caught:
        parse_message(raw)
    assert caught.value.reason.startswith("message is 5.")
    assert "over the 4 MB limit" in caught.value.reason


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        bytes(range(256)) * 64,
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 500,
        b"just some words\nwithout any header at all\n",
        b"Foo: bar\n\nno usual header",
    ],
    ids=["empty", "binary", "png", "prose", "no-known-header"],
)
def test_not_an_email_is_rejected(raw: bytes):
    with pytest.raises(MalformedMessage) as caught:
        parse_message(raw)
    assert "not an e-mail" in caught.value.reason


BROKEN = b"""From: a@b.example
To: c@d.example
Subject: broken
Content-Type: multipart/mixed; boundary="XX"

--XX
Content-Type: text/plain
Content-Transfer-Encoding: base64

aHR0cHM6Ly9vay5leGFtcGxlLmNvbS9h!!!not base64 at all***
--XX
Content-Type: text/html; charset=x-no-such-charset
Content-Transfer-Encoding: quoted-printable

<a href=3D"https://qp.example.com/b">b</a> =E9=ZZ
--XX
Content-Type: text/plain
Content-Transfer-Encoding: 8bit+

see https://eightbitplus.example.org/c \xff\xfe
"""


def test_broken_mime_is_parsed_best_effort():
    mail = parse_message(BROKEN)  # no closing boundary, bad base64, unknown charset
    assert "https://qp.example.com/b" in mail.urls
    assert "https://eightbitplus.example.org/c" in mail.urls


def test_too_many_parts_cannot_be_walked():
    parts = b"".join(b"--B\nContent-Type: text/plain\n\nx\n" for _ in range(1200))
    raw = b"From: a@b.example\nContent-Type: multipart/mixed; boundary=B\n\n" + parts + b"--B--\n"
    with pytest.raises(MalformedMessage) as caught:
        parse_message(raw)
    assert "MIME parts" in caught.value.reason


def test_attachment_bodies_are_hashed_not_searched():
    msg = EmailMessage()
    msg["From"] = "a@b.example"
    msg.set_content("see attached")
    msg.add_attachment(
        b"%PDF-1.4 https://inside-pdf.example.com/x",
        maintype="application",
        subtype="pdf",
        filename="paypal-secure.com invoice.pdf",
    )
    msg.add_attachment(
        "<a href='https://in-html.example.com/'>x</a>", subtype="html", filename="page.html"
    )
    mail = parse_message(msg.as_bytes())
    assert mail.urls == ["https://in-html.example.com/"]
    assert [a.filename for a in mail.attachments] == ["paypal-secure.com invoice.pdf", "page.html"]
    assert "paypal-secure.com" in mail.domains  # from the file name
    assert not any("inside-pdf" in d for d in mail.domains)


def test_a_url_a_script_hides_as_base64_is_extracted_never_run():
    import base64

    hidden = base64.b64encode(b"https://hidden-collector.example/submit?x=1").decode()
    urlsafe = base64.urlsafe_b64encode(b"http://other-hidden.example/p?q=>>>").decode().rstrip("=")
    noise = base64.b64encode(bytes(range(256)) * 4).decode()  # an image's bytes: nothing to find
    page = (f"<html><script>var u = atob('{hidden}'); var v = atob(\"{urlsafe}\");"
            f"var img = '{noise}aHR0cXXXX';</script><p>Loading...</p></html>")
    mail = parse_message(_with_html_attachments(page))
    assert "https://hidden-collector.example/submit?x=1" in mail.urls
    assert any(u.startswith("http://other-hidden.example/p") for u in mail.urls)
    assert len(mail.urls) == 2 and sorted(mail.hidden_urls) == sorted(mail.urls)
    # hiding an address from the reader is evidence: with an unknown, foreign domain, enough to act
    from handrail.runbooks.phishing.verdict import VerdictSettings, judge

    rows = {v.domain: v for v in judge(mail, None, VerdictSettings()).domains}
    assert "a script in the message hides this address as base64" in rows["hidden-collector.example"].evidence
    assert rows["hidden-collector.example"].score == 3  # hidden 2 + not the sender's domain 1 (no list)


def test_hidden_urls_are_capped_per_message_not_per_part():
    import base64

    from handrail.runbooks.phishing.mail import MAX_BASE64_URLS

    pages = []
    for part in range(3):
        tokens = [base64.b64encode(f"https://h{part}-{i}.example/".encode()).decode() for i in range(40)]
        pages.append("<script>" + ";".join(f"atob('{t}')" for t in tokens) + "</script>")
    assert len(parse_message(_with_html_attachments(*pages)).hidden_urls) == MAX_BASE64_URLS


def _with_html_attachments(*pages: str) -> bytes:
    """A short message carrying each page as an HTML attachment (the way kits arrive)."""
    msg = EmailMessage()
    msg["From"] = "hr@payroll-notice.example"
    msg["To"] = "alice@corp.example"
    msg["Subject"] = "Salary"
    msg["Message-ID"] = "<b64@payroll-notice.example>"
    msg.set_content("See the attachment.")
    for n, page in enumerate(pages):
        msg.add_attachment(page.encode(), maintype="text", subtype="html", filename=f"page-{n}.html")
    return msg.as_bytes()
