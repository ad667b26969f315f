"""`custos keybroker` on the broker's state folder: a key file, a policy shown and changed, a
revocation and a rotation; bad input is one line and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

from tests.unit.cli.conftest import CliRunner as Custos
from typer.testing import CliRunner

from custos.cli.main import app
from custos.core.wire.keybroker import KeyPolicy
from custos.keybroker.vault import KeyVault, load_key_file

POLICY = KeyPolicy(package="sauce@1.0.0", ciphertext_digest="c1" * 32, plaintext_digest="9a" * 32,
                   measurements=["5e" * 32])  # fmt: skip


def test_policy_revoke_and_rotate(tmp_path: Path, custos: Custos) -> None:
    runner = CliRunner()
    key, new_key, state = tmp_path / "vault.key", tmp_path / "new.key", tmp_path / "state"
    assert runner.invoke(app, ["keybroker", "init-key", str(key)]).exit_code == 0
    assert "never overwritten" in custos("keybroker", "init-key", str(key)).assert_one_line_error()
    KeyVault(state, load_key_file(key)).put("key-sauce-0001", "olga", b"\x01" * 32, POLICY)
    where = ["--state", str(state), "--key-file", str(key)]
    shown = runner.invoke(app, ["keybroker", "policy", "show", "key-sauce-0001", *where])
    assert shown.exit_code == 0 and "sauce@1.0.0" in shown.output and "any of the project" in shown.output
    expires = ["--expires", "2027-06-30T00:00:00+00:00"]
    changed = runner.invoke(
        app,
        ["keybroker", "policy", "set", "key-sauce-0001", *where, "--gateway", "site-a", *expires, "--json"],
    )
    assert changed.exit_code == 0, changed.output
    assert '"gateways": [\n      "site-a"' in changed.output and "2027-06-30" in changed.output
    bad = custos("keybroker", "policy", "set", "key-sauce-0001", *where, "--expires", "soon")
    assert "is not an ISO time" in bad.assert_one_line_error()
    revoked = runner.invoke(
        app, ["keybroker", "revoke", "key-sauce-0001", *where, "--reason", "licence ended"]
    )
    assert revoked.exit_code == 0
    assert runner.invoke(app, ["keybroker", "init-key", str(new_key)]).exit_code == 0
    rotated = runner.invoke(app, ["keybroker", "rotate", *where, "--new-key-file", str(new_key)])
    assert rotated.exit_code == 0 and "1 key(s)" in rotated.output
    vault = KeyVault(state, load_key_file(new_key))
    entry = vault.get("key-sauce-0001")
    assert vault.data_key(entry) == b"\x01" * 32 and entry.revoked == "licence ended"
    where = ["--state", str(state), "--key-file", str(new_key)]
    missing = custos("keybroker", "policy", "show", "nope-0000-0000", *where)
    assert "holds no key nope-0000-0000" in missing.assert_one_line_error()


def test_publish_confidential_needs_a_broker(tmp_path: Path, custos: Custos) -> None:
    result = custos("model", "publish", str(tmp_path), "--kit", str(tmp_path), "--confidential")
    assert "--confidential and --broker URL go together" in result.assert_one_line_error()
