"""Configuration: environment variables, and no production start without a secret key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from logistique import create_app
from logistique.config import ConfigError


def test_production_start_without_secret_key_refuses(monkeypatch, tmp_path):
    monkeypatch.delenv("LOGISTIQUE_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="LOGISTIQUE_SECRET_KEY"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3"})


def test_the_command_line_says_why_it_refuses(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "LOGISTIQUE_DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3"}
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "logistique", "init-db"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "LOGISTIQUE_SECRET_KEY n'est pas défini" in result.stderr


def test_environment_variables_configure_the_app(monkeypatch, tmp_path):
    monkeypatch.setenv("LOGISTIQUE_SECRET_KEY", "k" * 32)
    monkeypatch.setenv("LOGISTIQUE_DATABASE_URL", f"sqlite:///{tmp_path}/env.sqlite3")
    monkeypatch.setenv("LOGISTIQUE_BASE_URL", "https://logistique.example.gouv.fr/")
    monkeypatch.setenv("LOGISTIQUE_DEMO_MODE", "0")
    app = create_app()
    assert app.config["SECRET_KEY"] == "k" * 32
    assert app.config["DATABASE_URL"].endswith("env.sqlite3")
    assert app.config["BASE_URL"] == "https://logistique.example.gouv.fr"
    assert app.config["DEMO_MODE"] is False


def test_default_database_is_a_file_in_the_instance_folder(monkeypatch):
    monkeypatch.delenv("LOGISTIQUE_DATABASE_URL", raising=False)
    app = create_app({"SECRET_KEY": "k"})
    assert app.config["DATABASE_URL"] == f"sqlite:///{app.instance_path}/logistique.sqlite3"
