"""The IMAP mailbox backend against a real Dovecot: the lab's mailbox contract over IMAP,
STARTTLS and implicit TLS, with the password from the environment."""

from __future__ import annotations

import pytest

from handrail.ops.tools_config import ImapMailbox as ImapConfig
from handrail.ops.tools_config import ToolsConfigError, parse_tools_config
from handrail.tools.errors import Conflict, Invalid, NotFound, Unauthorized, Unavailable
from handrail.tools.journal import Journal
from handrail.tools.mailbox_imap import ImapMailbox
from tests.backend_servers import dovecot, free_port

pytestmark = pytest.mark.backends

REPORT = (b"Message-ID: <report-1@corp.example>\r\nFrom: Alice <alice@corp.example>\r\n"
          b"To: phish@corp.example\r\nSubject: Fwd: your invoice\r\n\r\nSee http://evil-login.example/a\r\n")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with dovecot(tmp_path_factory.mktemp("dovecot")) as srv:
        yield srv


def client(srv, tmp_path, folder="INBOX", **over) -> ImapMailbox:
    fields = dict(host="127.0.0.1", port=srv["imap_port"], security="starttls", username=srv["user"],
                  password=srv["password"], ca_file=srv["ca_file"], folder=folder, timeout=5)
    return ImapMailbox(ImapConfig(backend="imap", **{**fields, **over}), Journal(tmp_path / "journal.db"))


async def test_mailbox_contract_over_starttls(server, tmp_path):
    m = client(server, tmp_path)
    assert await m.list_messages() == []
    d = await m.deliver(REPORT)
    assert d.created and d.message_id == "<report-1@corp.example>"
    again = await m.deliver(REPORT)
    assert again.id == d.id and not again.created
    [msg] = await m.list_messages("unprocessed")
    assert msg.id == d.id and msg.subject == "Fwd: your invoice" and "alice@corp.example" in msg.sender
    assert msg.size == len(REPORT) and msg.received_at
    assert await m.fetch_raw(d.id) == REPORT  # byte for byte: evidence
    assert (await m.get_message(d.id)) == msg
    done = await m.mark_processed(d.id)  # before: unprocessed, after: processed, read back
    assert done.status == "processed"
    assert await m.list_messages("unprocessed") == []
    assert [x.id for x in await m.list_messages("processed")] == [d.id]
    with pytest.raises(Conflict):
        await m.mark_processed(d.id)
    assert (await m.mark_unprocessed(d.id)).status == "unprocessed"
    with pytest.raises(NotFound):
        await m.fetch_raw("MSG-999999")
    with pytest.raises(NotFound):
        await m.fetch_raw("424242")
    with pytest.raises(Invalid):
        await m.deliver(b"")
    await m.delete_message(d.id)
    with pytest.raises(NotFound):
        await m.get_message(d.id)


async def test_fetch_does_not_mark_seen_and_idempotent_replay(server, tmp_path):
    m = client(server, tmp_path, security="tls", port=server["imaps_port"])  # implicit TLS
    raw = REPORT.replace(b"report-1", b"report-2")
    d = await m.deliver(raw)
    await m.fetch_raw(d.id)
    first = await m.mark_processed(d.id, idempotency_key="poll-1")
    assert await m.mark_processed(d.id, idempotency_key="poll-1") == first  # replay, no Conflict
    await m.mark_unprocessed(d.id, idempotency_key="undo-1")
    await m.mark_unprocessed(d.id, idempotency_key="undo-1")
    assert (await m.get_message(d.id)).status == "unprocessed"
    with pytest.raises(Invalid) as exc:
        await m.mark_processed(d.id, idempotency_key="undo-1")
    assert exc.value.code == "idempotency_key_reused"
    await m.delete_message(d.id)


async def test_delete_removes_only_its_message(server, tmp_path):
    """A message an analyst's client marked \\Deleted (not yet expunged) is evidence still there:
    deleting another message must not expunge it with its own."""
    import imaplib

    m = client(server, tmp_path)
    ours = await m.deliver(REPORT.replace(b"report-1", b"report-del-1"))
    theirs = await m.deliver(REPORT.replace(b"report-1", b"report-del-2"))

    def analyst_marks_deleted():
        c = imaplib.IMAP4("127.0.0.1", server["imap_port"])
        c.login(server["user"], server["password"])
        c.select("INBOX")
        assert c.uid("STORE", theirs.id.rpartition(".")[2], "+FLAGS", r"(\Deleted)")[0] == "OK"
        c.logout()

    import asyncio

    await asyncio.to_thread(analyst_marks_deleted)
    await m.delete_message(ours.id, idempotency_key="del-1")
    await m.delete_message(ours.id, idempotency_key="del-1")  # replay
    with pytest.raises(NotFound):
        await m.get_message(ours.id)
    assert (await m.get_message(theirs.id)).id == theirs.id
    assert await m.fetch_raw(theirs.id) == REPORT.replace(b"report-1", b"report-del-2")
    for hostile in ("1:*", "1,2", "1 2", "-1", "1\r\nA1 LOGOUT", "é", "9" * 5000):
        with pytest.raises(NotFound):
            await m.delete_message(hostile)
    assert (await m.get_message(theirs.id)).id == theirs.id


async def test_a_folder_name_with_quotes_and_non_ascii(server, tmp_path):
    import asyncio

    from imap_tools import MailBoxUnencrypted

    folder = 'Phish "Reports" für SOC'

    def create():
        with MailBoxUnencrypted("127.0.0.1", server["imap_port"]).login(server["user"], server["password"]) as box:
            box.folder.create(folder)

    await asyncio.to_thread(create)
    m = client(server, tmp_path, folder=folder)
    d = await m.deliver(REPORT.replace(b"report-1", b"report-folder"))
    assert [x.id for x in await m.list_messages()] == [d.id]


async def test_an_id_from_an_earlier_generation_of_the_folder_names_no_message(server, tmp_path):
    """A folder deleted and created again counts UIDs from 1 under a new UIDVALIDITY: a rollback
    holding the old id must find nothing, never the stranger that now has the same UID."""
    import asyncio

    from imap_tools import MailBoxUnencrypted

    folder = "Recreated"

    def recreate(first: bool):
        with MailBoxUnencrypted("127.0.0.1", server["imap_port"]).login(server["user"], server["password"]) as box:
            if not first:
                box.folder.delete(folder)
            box.folder.create(folder)

    await asyncio.to_thread(recreate, True)
    m = client(server, tmp_path, folder=folder)
    old = await m.deliver(REPORT.replace(b"report-1", b"report-gen-1"))
    await m.mark_processed(old.id)
    await asyncio.sleep(1.1)  # Dovecot derives a new folder's UIDVALIDITY from the clock
    await asyncio.to_thread(recreate, False)
    new = await m.deliver(REPORT.replace(b"report-1", b"report-gen-2"))
    assert new.id.rpartition(".")[2] == old.id.rpartition(".")[2] and new.id != old.id  # same UID, new generation
    with pytest.raises(NotFound, match="earlier generation"):
        await m.mark_unprocessed(old.id)
    with pytest.raises(NotFound, match="earlier generation"):
        await m.delete_message(old.id)
    assert (await m.get_message(new.id)).status == "unprocessed"  # the stranger is untouched
    assert (await m.get_message(new.id.rpartition(".")[2])).id == new.id  # a bare UID: this generation


async def test_refusals_and_failures(server, tmp_path):
    """Last in the module: after a failed login Dovecot delays that address's next logins."""
    with pytest.raises(Unauthorized):  # the server's certificate is not trusted without its CA
        await client(server, tmp_path, ca_file=None).list_messages()
    with pytest.raises(NotFound):
        await client(server, tmp_path, folder="NoSuchFolder").list_messages()
    with pytest.raises(Unavailable) as exc:
        await client(server, tmp_path, port=free_port()).list_messages()
    assert exc.value.retryable
    with pytest.raises(Unauthorized) as exc:
        await client(server, tmp_path, password="wrong-password").list_messages()
    assert "wrong-password" not in str(exc.value) and not exc.value.retryable


def test_password_comes_from_the_environment_only():
    data = {"tools": {"mailbox": {"backend": "imap", "host": "imap.corp.example", "username": "soc",
                                  "password_env": "SOC_IMAP_PW"}}}
    with pytest.raises(ToolsConfigError, match="SOC_IMAP_PW"):
        parse_tools_config(data, env={})
    cfg = parse_tools_config(data, env={"SOC_IMAP_PW": "pw"})
    assert cfg.mailbox.password == "pw" and "pw" not in repr(cfg) and "password" not in cfg.model_dump()["mailbox"]
    data["tools"]["mailbox"]["password"] = "in-the-file"
    with pytest.raises(ToolsConfigError):
        parse_tools_config(data, env={"SOC_IMAP_PW": "pw"})


def test_login_while_the_servers_authentication_is_down_is_retryable(tmp_path):
    """Dovecot answers `NO [UNAVAILABLE] Temporary authentication failure` when its password
    database fails (here a checkpassword program exiting 111): that is worth a retry, not a refusal."""
    import asyncio

    tmp_path.chmod(0o755)
    script = tmp_path / "checkpassword"
    script.write_text("#!/bin/sh\nexit 111\n")
    script.chmod(0o755)
    with dovecot(tmp_path / "dovecot", passdb=f"driver = checkpassword\n  args = {script}") as srv:
        with pytest.raises(Unavailable) as exc:
            asyncio.run(client(srv, tmp_path).list_messages())
    assert exc.value.retryable and srv["password"] not in str(exc.value)


def test_a_password_login_cannot_quote_is_sent_safely(tmp_path):
    """LOGIN takes a quoted ASCII string: a UTF-8 password could not be sent at all (a local
    'ascii' codec error quoting its position), and a CR/LF in one ends the command line. Such
    passwords go as SASL PLAIN; a wrong one is Unauthorized and never echoed."""
    import asyncio

    password = "pä§s wörd-S3CRET"
    with dovecot(tmp_path / "dovecot", password=password) as srv:
        assert asyncio.run(client(srv, tmp_path, password=password).list_messages()) == []
        for wrong in ("pä§s wörd-WRONG", "x\r\nA1 LOGOUT-WRONG"):
            with pytest.raises(Unauthorized) as exc:
                asyncio.run(client(srv, tmp_path, password=wrong, timeout=15).list_messages())
            assert "WRONG" not in str(exc.value) and "ä" not in str(exc.value)
        with pytest.raises(Unauthorized):  # a mechanism the server does not offer is a refused login too
            asyncio.run(client(srv, tmp_path, auth="xoauth2", timeout=15).list_messages())
