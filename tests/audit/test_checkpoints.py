"""Signed checkpoints of the chain's head, outside the database.

Personas: dave audits (downloads checkpoints, runs verify_audit); mallory-the-DBA deletes the
last events and rewinds the head row, which needs no key.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from audit import tasks
from audit.checkpoints import LOG_NAME, checkpoint_latest, checkpoint_write
from audit.models import AuditChainHead, AuditEvent, ChainCheck
from audit.services import audit_event_record
from tests.audit.test_chain import raw

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def checkpoint_dir(settings, tmp_path) -> Path:
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    return Path(settings.AUDIT_CHECKPOINT_DIR)


def chain_of(n: int) -> None:
    with transaction.atomic():
        for i in range(n):
            audit_event_record(action="test.event", message=f"event {i}", data={"i": i})


def cut_the_tail(keep: int) -> None:
    """Delete every event after ``keep`` and rewind the head to it, as a DBA could: no key."""
    raw("DELETE FROM audit_auditevent WHERE seq > %s", [keep])
    last = AuditEvent.objects.get(seq=keep)
    AuditChainHead.objects.filter(id=1).update(seq=last.seq, hash=last.hash)


def test_a_cut_tail_with_a_rewound_head_passes_plain_verify_but_not_the_checkpoint(
    checkpoint_dir, capsys
):
    chain_of(10)
    checkpoint_write()
    cut_the_tail(keep=5)

    call_command("verify_audit")  # the chain alone cannot tell
    assert "Audit chain OK" in capsys.readouterr().out

    with pytest.raises(CommandError) as failure:
        call_command("verify_audit", "--checkpoint", str(checkpoint_dir / LOG_NAME))
    message = str(failure.value)
    assert "BROKEN at event #6" in message
    assert "the chain ends at #5" in message and "#6 to #10 were removed" in message


def test_a_rewritten_tail_of_the_same_length_differs_from_the_checkpoint(checkpoint_dir):
    chain_of(6)
    checkpoint_write()
    cut_the_tail(keep=3)
    chain_of(3)  # new, properly chained events #4-#6 in place of the removed ones

    with pytest.raises(CommandError, match=r"event #6 differs from the checkpoint"):
        call_command("verify_audit", "--checkpoint", str(checkpoint_dir / LOG_NAME))


def test_an_intact_chain_holds_every_checkpoint_in_the_log(checkpoint_dir, capsys):
    chain_of(3)
    checkpoint_write()
    chain_of(2)
    checkpoint_write()
    lines = (checkpoint_dir / LOG_NAME).read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [3, 5]
    call_command("verify_audit", "--checkpoint", str(checkpoint_dir / LOG_NAME))
    assert "Audit chain OK" in capsys.readouterr().out


def test_a_forged_checkpoint_is_refused(checkpoint_dir, tmp_path):
    chain_of(2)
    real = json.loads(checkpoint_write().as_json())
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({**real, "seq": 1}))
    with pytest.raises(CommandError, match="not signed with this installation's audit key"):
        call_command("verify_audit", "--checkpoint", str(forged))
    garbage = tmp_path / "garbage.json"
    garbage.write_text("not json")
    with pytest.raises(CommandError, match="Checkpoint refused"):
        call_command("verify_audit", "--checkpoint", str(garbage))
    with pytest.raises(CommandError, match="cannot read"):
        call_command("verify_audit", "--checkpoint", str(tmp_path / "missing.json"))


def test_the_periodic_task_writes_only_when_the_head_moved(checkpoint_dir):
    chain_of(2)
    tasks.write_audit_checkpoint.delay()
    tasks.write_audit_checkpoint.delay()
    chain_of(1)
    tasks.write_audit_checkpoint.delay()
    seqs = [json.loads(x)["seq"] for x in (checkpoint_dir / LOG_NAME).read_text().splitlines()]
    assert seqs == [2, 3]


def test_the_log_is_only_ever_appended_to(checkpoint_dir):
    chain_of(1)
    checkpoint_write()
    before = (checkpoint_dir / LOG_NAME).read_bytes()
    chain_of(1)
    checkpoint_write()
    after = (checkpoint_dir / LOG_NAME).read_bytes()
    assert after.startswith(before) and len(after) > len(before)


def test_every_export_writes_a_checkpoint_including_its_own_event(dave_client):
    chain_of(2)
    response = dave_client.get("/audit/export/audit.csv")
    b"".join(response.streaming_content)
    latest = checkpoint_latest()
    head = AuditChainHead.objects.get(id=1)
    assert latest is not None and (latest.seq, latest.head_hash) == (head.seq, head.hash)
    assert AuditEvent.objects.get(seq=head.seq).action == "export.created"


def test_dave_downloads_the_latest_checkpoint_and_it_verifies(dave_client, tmp_path, capsys):
    assert dave_client.get("/audit/checkpoint.json").status_code == 404  # none written yet
    chain_of(3)
    written = checkpoint_write()
    response = dave_client.get("/audit/checkpoint.json")
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    assert json.loads(response.content) == json.loads(written.as_json())
    kept = tmp_path / "kept.json"
    kept.write_bytes(response.content)
    call_command("verify_audit", "--checkpoint", str(kept))
    assert "Audit chain OK" in capsys.readouterr().out
    assert b"checkpoint-download" in dave_client.get("/audit/").content


def test_people_who_are_not_auditors_cannot_download_checkpoints(alice_client, carol_client):
    chain_of(1)
    checkpoint_write()
    assert alice_client.get("/audit/checkpoint.json").status_code == 403
    assert carol_client.get("/audit/checkpoint.json").status_code == 403


def test_the_webhook_receives_the_checkpoint_and_its_failure_stops_nothing(
    settings, monkeypatch, checkpoint_dir
):
    settings.AUDIT_CHECKPOINT_WEBHOOK_URL = "https://hooks.example/checkpoints"
    sent = []

    def post(url, *, content, headers, timeout):
        sent.append((url, json.loads(content)))
        return httpx.Response(500, request=httpx.Request("POST", url))

    monkeypatch.setattr(httpx, "post", post)
    chain_of(1)
    checkpoint = checkpoint_write()
    assert sent == [("https://hooks.example/checkpoints", json.loads(checkpoint.as_json()))]
    assert checkpoint_latest() == checkpoint  # the directory still has it


def test_the_periodic_check_holds_the_chain_against_the_checkpoint_log(dave_client):
    chain_of(8)
    last = checkpoint_write().seq  # dave's sign-in is on the chain too
    cut_the_tail(keep=4)
    checkpoint_write()  # a later checkpoint of the rewound head does not hide the cut

    assert tasks.verify_audit_chain.delay().get() is False

    check = ChainCheck.objects.latest("checked_at")
    assert not check.ok and check.first_broken_seq == 5
    assert f"#5 to #{last} were removed" in check.message
    assert b"BROKEN at event #5" in dave_client.get("/audit/").content


def test_an_unwritable_checkpoint_directory_does_not_break_an_export(
    settings, tmp_path, dave_client, caplog
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings.AUDIT_CHECKPOINT_DIR = str(blocker / "checkpoints")
    response = dave_client.get("/audit/export/audit.csv")
    assert response.status_code == 200
    b"".join(response.streaming_content)
    assert "not written" in caplog.text
