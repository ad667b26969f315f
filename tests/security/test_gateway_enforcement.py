"""The gateway is the last word on its data, and it only ever connects out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text

from custos.core.errors import Conflict
from custos.local.cluster import Cluster

# The database is not this file's subject: its tests run on the SQLite `cluster` only.
pytestmark = pytest.mark.one_database

SITES = ["site-a/patients", "site-b/patients", "site-c/patients"]


def _orchestrator_db(cluster: Cluster) -> str:
    return (
        cluster.database_url or f"sqlite:///{cluster.work_dir / 'state' / 'orchestrator' / 'orchestrator.db'}"
    )


def test_c4_gateway_refuses_a_task_its_policy_denies_even_if_the_orchestrator_db_was_edited(
    cluster: Cluster,
) -> None:
    with cluster.client("alice") as alice:
        spec = alice.create_spec("tampered", "stats@1.0.0", SITES, ["age"])
        alice.activate_spec(spec.id)
        # An attacker with the orchestrator's database widens the spec and the stored policies (the
        # text and the signed envelope the gateways receive), so the orchestrator itself now hands out
        # a job that reads the withheld diagnosis column, with a policy that seems to allow it.
        engine = create_engine(_orchestrator_db(cluster))
        as_json = "CAST(:s AS json)" if engine.dialect.name == "postgresql" else ":s"
        set_policy = f"UPDATE policies SET policy_yaml = :p, signed_json = {as_json} WHERE dataset_id = :d"  # noqa: S608
        update = text(set_policy)
        with engine.begin() as conn:
            originals = conn.execute(text("SELECT dataset_id, policy_yaml, signed_json FROM policies")).all()
        try:
            with engine.begin() as conn:
                conn.execute(
                    text("UPDATE specs SET columns = :c WHERE id = :id"),
                    {"c": '["age", "diagnosis"]', "id": spec.id},
                )
                for dataset_id, policy, envelope in originals:
                    widened = yaml.safe_load(policy)
                    widened["grants"][0]["columns"].append("diagnosis")
                    signed = json.loads(envelope) if isinstance(envelope, str) else dict(envelope)
                    signed["policy_yaml"] = yaml.safe_dump(widened)
                    conn.execute(
                        update, {"p": signed["policy_yaml"], "s": json.dumps(signed), "d": dataset_id}
                    )
            job = alice.submit_job(spec.id, {"columns": ["diagnosis"], "statistics": ["count"]})
            with pytest.raises(
                Conflict,
                match=r"failed: the policy for site-./patients does not match its signature: it was changed",
            ):
                alice.wait_job(job.id, timeout=60)
            assert alice.job(job.id).state == "failed"
        finally:
            with engine.begin() as conn:  # the session's other tests share this cluster
                for dataset_id, policy, envelope in originals:
                    conn.execute(
                        update,
                        {
                            "p": policy,
                            "s": envelope if isinstance(envelope, str) else json.dumps(envelope),
                            "d": dataset_id,
                        },
                    )
            engine.dispose()


def _listening_inodes() -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:
            continue
        if str(target).startswith("socket:["):
            inodes.add(str(target)[len("socket:[") : -1])
    return inodes


def test_invariant1_gateway_has_no_listening_tcp_socket(cluster: Cluster) -> None:
    pids = cluster.pids()
    listening = _listening_inodes()
    assert _socket_inodes(pids["orchestrator"]) & listening, "the check must see the orchestrator listening"
    for name in ("site-a", "site-b", "site-c"):
        assert _socket_inodes(pids[name]), f"{name} should hold its outbound connection"
        assert not _socket_inodes(pids[name]) & listening, f"{name} has a listening TCP socket"
