"""Config errors name the file, the key path and what is wrong; secrets come from the environment."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tracker.cli import main
from tracker.config import load
from tracker.settings import ConfigError

REPO = Path(__file__).resolve().parents[2]
MINIMAL = """
[shops.demo]
name = "Demo"
sender = "Demo <hello@demo.example.com>"

[marketplaces.shop]
type = "sandbox"

[couriers.sandbox]
type = "sandbox"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, text))
    return caught.value


def test_the_bundled_config_loads_and_is_a_sandbox():
    config = load(REPO / "config.toml")
    assert config.is_sandbox
    assert config.database_url.endswith("trackmail.db")
    assert "feedback_request" in config.emails.enabled


def test_a_minimal_config_gets_sensible_defaults_and_paths_relative_to_the_file(tmp_path):
    config = load(write(tmp_path, MINIMAL))
    assert config.database_url == f"sqlite:///{tmp_path / 'trackmail.db'}"
    assert config.emails.outbox_dir == tmp_path / "outbox"
    assert config.notification_horizon == timedelta(hours=48)
    assert config.marketplaces["shop"].shop == "demo"


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml: file not found"):
        load(tmp_path / "nope.toml")


def test_invalid_toml_says_where(tmp_path):
    err = error_for(tmp_path, "[shops.demo\nname = 1")
    assert "config.toml" in str(err) and "not valid TOML" in str(err) and "line 1" in str(err)


def test_an_unknown_key_is_refused_with_a_suggestion(tmp_path):
    err = error_for(tmp_path, MINIMAL + "\n[emails]\nfeedbak_after = '3d'\n")
    assert err.key == "emails.feedbak_after"
    assert "did you mean 'feedback_after'" in str(err)


def test_a_bad_duration_names_the_key_and_the_format(tmp_path):
    err = error_for(tmp_path, "[trackmail]\nnotification_horizon = 'two days'\n" + MINIMAL)
    assert err.key == "trackmail.notification_horizon"
    assert "'48h'" in err.problem


def test_a_wrong_type_names_the_key(tmp_path):
    err = error_for(tmp_path, MINIMAL.replace('name = "Demo"', "name = 42"))
    assert err.key == "shops.demo.name" and "must be a string" in err.problem


def test_an_email_kind_that_does_not_exist_is_refused(tmp_path):
    err = error_for(tmp_path, MINIMAL + "\n[emails.kinds]\ndelivred = false\n")
    assert err.key == "emails.kinds.delivred" and "'delivered'" in str(err)


def test_a_kind_can_be_switched_off(tmp_path):
    config = load(write(tmp_path, MINIMAL + "\n[emails.kinds]\nin_transit = false\n"))
    assert "in_transit" not in config.emails.enabled and "delivered" in config.emails.enabled


def test_an_account_naming_an_unknown_shop_is_refused(tmp_path):
    err = error_for(tmp_path, MINIMAL + "\n[shops.other]\nname='O'\nsender='o@o.example.com'\n")
    assert err.key == "marketplaces.shop.shop"


def test_secrets_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_SENDER", "Demo <secret-sender@demo.example.com>")
    config = load(write(tmp_path, MINIMAL.replace('"Demo <hello@demo.example.com>"', '"${DEMO_SENDER}"')))
    assert config.shops["demo"].sender == "Demo <secret-sender@demo.example.com>"


def test_a_missing_environment_variable_is_named_and_no_value_leaks(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOP_SENDER", raising=False)
    err = error_for(tmp_path, MINIMAL.replace('"Demo <hello@demo.example.com>"', '"${SHOP_SENDER}"'))
    assert err.key == "shops.demo.sender"
    assert "environment variable SHOP_SENDER is not set" in str(err)


def test_a_sped_up_clock_is_refused_once_real_accounts_are_connected(tmp_path):
    real_shop = MINIMAL.replace('type = "sandbox"\n\n[couriers', 'type = "shopify"\n\n[couriers')
    text = "[trackmail]\nclock_speed = 100\n" + real_shop
    err = error_for(tmp_path, text)
    assert err.key == "trackmail.clock_speed"


def test_an_unknown_adapter_type_is_reported_by_check_with_exit_code_1(tmp_path, capsys):
    pigeon = MINIMAL.replace('[couriers.sandbox]\ntype = "sandbox"', '[couriers.sandbox]\ntype = "pigeon"')
    path = write(tmp_path, pigeon)
    assert main(["--config", str(path), "check"]) == 1
    assert "couriers.sandbox.type: unknown courier type 'pigeon'" in capsys.readouterr().err


def test_the_cli_exits_2_with_the_message_on_a_config_error(tmp_path, capsys):
    path = write(tmp_path, MINIMAL + "\n[schedule]\npoll_shipments = 0\n")
    assert main(["--config", str(path), "shipments"]) == 2
    err = capsys.readouterr().err
    assert "config.toml: schedule.poll_shipments: must be longer than zero" in err


def test_an_smtp_transport_reads_its_table_with_the_password_from_the_environment(tmp_path, monkeypatch):
    from emails.smtp import SmtpSender
    from tracker.app import build_senders

    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    text = MINIMAL + ('\n[emails]\ntransport = "smtp"\n\n[emails.smtp]\nhost = "mail.example.com"\n'
                      'security = "tls"\nusername = "shop"\npassword = "${SMTP_PASSWORD}"\n')
    sender, _ = build_senders(load(write(tmp_path, text)))
    assert isinstance(sender, SmtpSender)
    assert (sender.settings.port, sender.settings.password) == (465, "s3cret")


def test_an_smtp_transport_without_its_table_or_with_a_bad_security_is_named(tmp_path):
    err = error_for(tmp_path, MINIMAL + '\n[emails]\ntransport = "smtp"\n')
    assert err.key == "emails.smtp" and "is required" in err.problem
    from tracker.app import build_senders

    config = load(write(tmp_path, MINIMAL + '\n[emails]\ntransport = "smtp"\n[emails.smtp]\nhost = "h"\n'
                                            'security = "ssl"\n'))
    with pytest.raises(ConfigError, match="emails.smtp.security: must be one of starttls, tls, none"):
        build_senders(config)


def test_a_shop_can_send_through_its_own_transport(tmp_path):
    from emails.postmark import PostmarkSender
    from emails.send import OutboxFolderSender
    from tracker.app import build_senders

    text = MINIMAL.replace('sender = "Demo <hello@demo.example.com>"',
                           'sender = "Demo <hello@demo.example.com>"\ntransport = "postmark"')
    text += '\n[emails.postmark]\nserver_token = "t"\n'
    default, per_shop = build_senders(load(write(tmp_path, text)))
    assert isinstance(default, OutboxFolderSender) and isinstance(per_shop["demo"], PostmarkSender)
    err = error_for(tmp_path, MINIMAL.replace('sender = "Demo <hello@demo.example.com>"',
                                              'sender = "Demo <hello@demo.example.com>"\ntransport = "smtp"'))
    assert err.key == "shops.demo.transport" and "[emails.smtp]" in err.problem
