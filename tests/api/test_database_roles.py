"""Least privilege on PostgreSQL: ``v2v db init --roles`` makes an owner role that migrates and a
service role that reads and writes rows, and the service role cannot alter the audit log.

The test makes a scratch database (``pg_`` prefix) and two roles with unique names on the test
server, runs the command as an operator would (a subprocess), and drops them all afterwards.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import errors
from sqlalchemy.engine import make_url

from api.app import create_app
from api.setup import new_token
from tests.builders import POSTGRES_URL, make_settings, plan_small_cohort, propose, refer
from tests.paths import ROOT


def _libpq(url) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def scratch():
    """Names and URLs of a scratch database and two roles; all dropped afterwards (roles are
    cluster-wide: they go whatever the test did)."""
    tag = secrets.token_hex(4)
    admin = make_url(POSTGRES_URL)
    names = {"database": f"pg_roles_{tag}", "owner": f"v2v_owner_{tag}", "service": f"v2v_service_{tag}"}
    passwords = {"owner": secrets.token_urlsafe(12), "service": secrets.token_urlsafe(12)}
    urls = {
        who: _libpq(admin.set(username=names[who], password=passwords[who], database=names["database"]))
        for who in ("owner", "service")
    }
    try:
        yield names, passwords, urls
    finally:
        with psycopg.connect(_libpq(admin), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{names["database"]}" WITH (FORCE)')
            for who in ("service", "owner"):
                connection.execute(f'DROP ROLE IF EXISTS "{names[who]}"')


def _init_roles(urls: dict[str, str], admin: str | None = POSTGRES_URL) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("V2V_") and k != "DATABASE_URL"}
    env |= {"DATABASE_URL": urls["service"], "V2V_MIGRATION_DATABASE_URL": urls["owner"]}
    if admin:
        env["V2V_ADMIN_DATABASE_URL"] = admin
    command = [sys.executable, "-m", "api.cli", "db", "init", "--roles"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


REFUSED_TO_THE_SERVICE = [
    "ALTER TABLE audit_log DISABLE TRIGGER ALL",
    "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change",
    "DROP TRIGGER audit_log_no_change ON audit_log",
    "UPDATE audit_log SET actor = 'someone else'",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
    "ALTER TABLE bookings ADD COLUMN note text",
    "DELETE FROM bookings",
    "UPDATE alembic_version SET version_num = '0001'",
    "CREATE TABLE shadow (id int)",
]


def test_the_service_role_works_the_service_but_cannot_touch_the_audit_log_or_the_schema(scratch):
    names, passwords, urls = scratch
    for _ in range(2):  # the second run changes nothing and fails nowhere: idempotent
        done = _init_roles(urls)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"role {names['service']} may read and write rows" in done.stdout
        assert not any(p in done.stdout + done.stderr for p in passwords.values())

    with psycopg.connect(_libpq(make_url(POSTGRES_URL)), autocommit=True) as admin:
        stored = dict(
            admin.execute(
                "SELECT rolname, rolpassword FROM pg_authid WHERE rolname IN (%s, %s)",
                (names["owner"], names["service"]),
            ).fetchall()
        )
        owner_of_database = admin.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (names["database"],)
        ).fetchone()[0]
    assert owner_of_database == names["owner"]
    assert all(verifier.startswith("SCRAM-SHA-256$") for verifier in stored.values()) and len(stored) == 2

    # the service as it runs: the small cohort imported and planned, a referral proposed and confirmed
    settings = plan_small_cohort(make_settings(urls["service"], alternatives=1))
    tokens = {"coordinator": new_token(settings, "roles-coordinator", "coordinator")}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.tokens = tokens
        refer(client, "N-ROLES-1", approval="2027-01-11")
        proposal = propose(client, "N-ROLES-1")
        confirmed = client.post(
            f"/proposals/{proposal['id']}/confirm",
            json={"option": 0},
            headers={"Authorization": f"Bearer {tokens['coordinator']}"},
        )
        assert confirmed.status_code == 200, confirmed.text

    with psycopg.connect(urls["service"], autocommit=True) as service:
        assert service.execute("SELECT current_user").fetchone()[0] == names["service"]
        audited = service.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        assert audited > 0  # the service wrote the audit trail as it worked
        for statement in REFUSED_TO_THE_SERVICE:
            with pytest.raises(errors.InsufficientPrivilege):
                service.execute(statement)
        assert service.execute("SELECT count(*) FROM audit_log").fetchone()[0] == audited

    with psycopg.connect(urls["owner"], autocommit=True) as owner:  # the owner may (migrations need it)
        with owner.transaction(force_rollback=True):
            owner.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")


def test_db_init_roles_refuses_a_missing_administrator_and_a_superuser_role_in_one_line(scratch):
    names, passwords, urls = scratch
    missing = _init_roles(urls, admin=None)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "v2v db: V2V_ADMIN_DATABASE_URL: needed by --roles"
    superuser = make_url(urls["owner"]).set(username=make_url(POSTGRES_URL).username)
    refused = _init_roles(urls | {"owner": _libpq(superuser)})
    assert refused.returncode == 2 and "V2V_MIGRATION_DATABASE_URL" in refused.stderr, refused.stderr
    assert "superuser or the administrator" in refused.stderr
    for answer in (missing, refused):
        assert "Traceback" not in answer.stderr
        assert not any(p in answer.stdout + answer.stderr for p in passwords.values())
    with psycopg.connect(_libpq(make_url(POSTGRES_URL)), autocommit=True) as admin:  # nothing was made
        assert admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (names["service"],)).fetchone() is None
