"""Tokens from the command line: created (shown once), listed (never shown), revoked (refused at once)."""

import os
import subprocess
import sys

from tests.builders import auth
from tests.paths import ROOT


def v2v(settings, *args):
    env = {**os.environ, "DATABASE_URL": settings.database_url, "V2V_TODAY": settings.planning_day().isoformat()}
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_revoked_token_is_refused_and_listing_never_shows_a_secret(client, small_site):
    created = v2v(small_site, "token", "create", "night-nurse", "--role", "coordinator")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/patients", headers=headers).status_code == 200

    listed = v2v(small_site, "token", "list")
    assert "night-nurse\tcoordinator" in listed.stdout and secret not in listed.stdout

    assert v2v(small_site, "token", "revoke", "night-nurse").returncode == 0
    assert client.get("/patients", headers=headers).status_code == 401
    again = v2v(small_site, "token", "revoke", "night-nurse")
    assert again.returncode == 2 and "revoked already" in again.stderr and "Traceback" not in again.stderr
    audit = client.get("/audit?entity=token&entity_id=night-nurse", headers=auth(client, "admin")).json()
    assert [a["action"] for a in audit] == ["token.revoke", "token.create"]


def test_an_unreachable_database_is_one_line_not_a_traceback(small_site):
    broken = small_site.model_copy(update={"database_url": "postgresql://nobody@127.0.0.1:1/none"})
    result = v2v(broken, "token", "list")
    assert result.returncode == 2
    assert result.stderr.startswith("v2v token: database: ") and len(result.stderr.strip().splitlines()) == 1
