"""The commands a merchant types: listings, previews and checks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from emails.kinds import EMAIL_KINDS
from tests.factories import REPO
from tracker.cli import main


@pytest.fixture(scope="module")
def shop_folder(tmp_path_factory):
    """A copy of the bundled config whose database holds four simulated days."""
    folder = tmp_path_factory.mktemp("shop")
    shutil.copy(REPO / "config.toml", folder / "config.toml")
    args = ["--config", str(folder / "config.toml"), "simulate", "--days", "4",
            "--database", str(folder / "trackmail.db"), "--outbox", str(folder / "outbox")]
    assert main(args) == 0
    return folder


def run_json(folder, *args):
    return main(["--config", str(folder / "config.toml"), *args, "--json"])


def test_shipments_lists_tracking_numbers_statuses_and_emails(shop_folder, capsys):
    capsys.readouterr()
    assert run_json(shop_folder, "shipments", "--limit", "500") == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) > 20
    assert all(r["tracking_number"].startswith("SB") and r["courier"] == "sandbox" for r in rows)
    assert {"delivered", "in_transit"} <= {r["status"] for r in rows}
    assert any(r["emails"] >= 3 for r in rows)


def test_shipments_filters_by_status_and_prints_a_table(shop_folder, capsys):
    capsys.readouterr()
    assert main(["--config", str(shop_folder / "config.toml"), "shipments", "--status", "delivered"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["id", "order", "courier", "tracking_number", "status"]
    assert all(" delivered " in line for line in lines[1:])


def test_emails_lists_each_email_with_its_state(shop_folder, capsys):
    capsys.readouterr()
    assert run_json(shop_folder, "emails", "--kind", "delivered") == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["kind"] == "delivered" and r["state"] == "sent" for r in rows)
    assert all(r["message_id"].startswith("<") and r["tracking_number"] for r in rows)


@pytest.mark.parametrize("kind", EMAIL_KINDS)
def test_preview_writes_each_kind_to_a_file(kind, tmp_path, capsys):
    out = tmp_path / f"{kind}.html"
    assert main(["--config", str(REPO / "config.toml"), "preview", kind, "--out", str(out)]) == 0
    assert out.read_text().startswith("<!doctype html>")
    assert str(out) in capsys.readouterr().out


def test_preview_of_an_unknown_kind_lists_the_kinds(capsys):
    assert main(["--config", str(REPO / "config.toml"), "preview", "birthday"]) == 1
    assert "order_confirmation" in capsys.readouterr().err


def test_check_passes_on_the_bundled_config(capsys):
    assert main(["--config", str(REPO / "config.toml"), "check"]) == 0
    assert "all 13 templates render in en, de, fr" in capsys.readouterr().out


def test_check_reports_a_broken_override_with_file_and_line(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "in_transit.mjml").write_text("subject: On its way\n---\n<mj-section>\n{% for %}\n")
    text = (REPO / "config.toml").read_text().replace('# templates_dir = "my-templates"', 'templates_dir = "mine"')
    (tmp_path / "config.toml").write_text(text)
    assert main(["--config", str(tmp_path / "config.toml"), "check"]) == 1
    err = capsys.readouterr().err
    assert "in_transit.mjml:4:" in err
    assert err.count("problem:") == 1  # the other kinds still render from the built-ins


def test_the_installed_command_answers_help_without_a_config(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tracker.cli", "--help"], cwd=tmp_path, capture_output=True,
                            text=True, env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert result.returncode == 0
    for command in ("run", "simulate", "shipments", "emails", "preview", "check"):
        assert command in result.stdout


def test_a_missing_config_file_is_a_config_error(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "none.toml"), "shipments"]) == 2
    assert "none.toml: file not found" in capsys.readouterr().err
