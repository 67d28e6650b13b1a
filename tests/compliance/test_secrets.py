"""The self-test's ``secrets`` check: no file holding a secret is readable by others
(issue 11, finding 8). Before it, nothing looked: agent.db and a tillbox.toml with the
broker password were 0644 and the self-test passed."""

from __future__ import annotations

import stat

from compliance.selftest import run_selftest
from sync_agent.store import AgentStore

ALWAYS = dict(time_synced=lambda: True, record=False)


def secrets(ddir, probes):
    report = run_selftest(ddir, probes, only=["secrets"], **ALWAYS)
    (check,) = report.checks
    return check, report


def test_a_fresh_till_passes(till_dir, probes):
    AgentStore(till_dir.sync_dir / "agent.db").conn.close()
    check, report = secrets(till_dir, probes)
    assert check.result == "pass" and report.ok, check
    assert "2 secret file(s)" in check.value  # the device key and agent.db


def test_each_secret_file_readable_by_others_fails_with_the_fix(till_dir, probes, tmp_path):
    password = tmp_path / "broker-password"
    password.write_text("pw\n")
    password.chmod(0o600)
    config = till_dir.load_config()
    config.update("sync", password_file=str(password))
    till_dir.save_config(config)
    AgentStore(till_dir.sync_dir / "agent.db").conn.close()
    for path in (password, till_dir.sync_dir / "agent.db", till_dir.private_key_path):
        before = stat.S_IMODE(path.stat().st_mode)
        path.chmod(0o644)
        check, report = secrets(till_dir, probes)
        assert check.result == "fail" and check.fatal and not report.ok, (path, check)
        assert check.value == f"{path} has mode 0644: other users can read it"
        assert check.fix == f"run `chmod 600 {path}` (640 where the tillbox group needs it)"
        path.chmod(before)
    assert secrets(till_dir, probes)[0].result == "pass"


def test_a_config_holding_the_password_counts_and_warns(till_dir, probes):
    config = till_dir.load_config()
    config.update("sync", password="inline-secret")
    till_dir.save_config(config)
    check, _ = secrets(till_dir, probes)
    assert check.result == "warn" and "password_file" in check.fix
    till_dir.config_path.chmod(0o644)  # e.g. copied in by hand
    check, _ = secrets(till_dir, probes)
    assert check.result == "fail" and str(till_dir.config_path) in check.value
    assert "inline-secret" not in check.value + check.fix


def test_the_command_says_in_one_line_on_stderr_which_check_failed(till_dir):
    """Found by the config fuzz: a failing self-test exited 1 with its report on stdout
    and nothing on stderr, where every failing tillbox command says what to do."""
    from appliance.testing import run_cli

    config = till_dir.load_config()
    config.update("sync", password="inline-secret")
    till_dir.save_config(config)
    till_dir.config_path.chmod(0o644)
    out = run_cli("selftest", "--no-record", "--only", "secrets", "--data-dir", str(till_dir.root))
    assert out.code == 1 and "FAIL" in out.out  # the report, as before
    assert out.err.count("\n") == 1 and out.err.startswith("self-test failed: secrets; ")
    assert "inline-secret" not in out.out + out.err
    till_dir.config_path.chmod(0o600)
    passed = run_cli(
        "selftest", "--no-record", "--only", "secrets", "--data-dir", str(till_dir.root)
    )
    assert passed.code == 0 and passed.err == ""
