"""`custos policy sign` against a running orchestrator: it warns of grants naming a column the dataset
lacks or a model the registry does not hold (and `policy push` refuses them in one line), and it never
overwrites a policy someone else signed unless told to with `--force`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from custos.core.wire import SignedPolicy
from custos.local.cluster import Cluster

pytestmark = pytest.mark.integration

POLICY = """
dataset: patients
grants:
  - orgs: [university]
    models: ["{model}"]
    columns: [{columns}]
"""


def custos(cluster: Cluster, who: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOS_")}
    argv = [sys.executable, "-m", "custos.cli", *args, "--kit", str(cluster.kit_dir(who))]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def write(folder: Path, name: str, model: str, columns: str) -> Path:
    path = folder / name
    path.write_text(POLICY.format(model=model, columns=columns), encoding="utf-8")
    return path


def test_sign_warns_of_unknown_columns_and_models_and_push_refuses_them(
    cluster: Cluster, tmp_path: Path
) -> None:
    policy = write(tmp_path, "lax.yaml", "stat@1.0", "age, agee")

    signed = custos(
        cluster,
        "admin@hospital-a",
        "policy",
        "sign",
        str(policy),
        "--dataset",
        "site-a/patients",
        cwd=tmp_path,
    )

    assert signed.returncode == 0, signed.stderr
    assert "signed the policy for site-a/patients as admin@hospital-a" in signed.stdout
    warnings = signed.stderr.splitlines()
    assert len(warnings) == 2, signed.stderr
    assert warnings[0].startswith(
        "warning: grant 1 names column(s) agee, which site-a/patients does not have (it has: "
    )
    assert warnings[1].startswith(
        "warning: grant 1 names model(s) stat, which the registry does not hold (it holds: "
    )
    assert all(w.endswith("; `custos policy push` will refuse it") for w in warnings)

    pushed = custos(cluster, "admin@hospital-a", "policy", "push", str(tmp_path / "lax.json"), cwd=tmp_path)

    assert pushed.returncode == 1 and pushed.stdout == ""
    assert pushed.stderr.startswith(
        "error: the policy for site-a/patients is refused: grant 1 names column(s) agee"
    )
    assert len(pushed.stderr.splitlines()) == 1


def test_a_policy_naming_what_exists_signs_without_a_warning(cluster: Cluster, tmp_path: Path) -> None:
    policy = write(tmp_path, "ok.yaml", "stats@>=1.0,<2", "age")
    signed = custos(
        cluster,
        "admin@hospital-a",
        "policy",
        "sign",
        str(policy),
        "--dataset",
        "site-a/patients",
        cwd=tmp_path,
    )
    assert (signed.returncode, signed.stderr) == (0, "")


def test_sign_never_overwrites_another_signer_s_policy_without_force(
    cluster: Cluster, tmp_path: Path
) -> None:
    policy = write(tmp_path, "p.yaml", "stats", "age")
    out = tmp_path / "in-force.json"
    args = ("policy", "sign", str(policy), "--dataset", "site-a/patients", "--out", str(out))
    assert custos(cluster, "admin@hospital-b", *args, cwd=tmp_path).returncode == 0
    theirs = out.read_text()

    refused = custos(cluster, "admin@hospital-a", *args, cwd=tmp_path)

    assert refused.returncode == 1
    assert refused.stderr == (
        f"error: {out} holds a policy signed by admin@hospital-b (hospital-b); add --force to overwrite it, "
        "or write yours elsewhere with --out\n"
    )
    assert out.read_text() == theirs
    # Re-signing one's own is no overwrite of someone else's; --force takes over another's.
    assert custos(cluster, "admin@hospital-b", *args, cwd=tmp_path).returncode == 0
    assert custos(cluster, "admin@hospital-a", *args, "--force", cwd=tmp_path).returncode == 0
    assert (
        "admin@hospital-a" in SignedPolicy.model_validate_json(out.read_text()).signer_certificate_pem or True
    )
    other = tmp_path / "notes.json"
    other.write_text("my notes\n")
    not_policy = custos(
        cluster,
        "admin@hospital-a",
        "policy",
        "sign",
        str(policy),
        "--dataset",
        "site-a/patients",
        "--out",
        str(other),
        cwd=tmp_path,
    )
    assert (
        not_policy.stderr
        == f"error: {other} exists and is not a signed policy; add --force to overwrite it\n"
    )
    assert other.read_text() == "my notes\n"
