"""Least privilege on PostgreSQL: an owner role that migrates, a service role that reads and writes rows.

``provision`` (``v2v db init --roles``) makes it so, and may be run again at any time:

1. As the administrator (``V2V_ADMIN_DATABASE_URL``: a superuser, or a role with CREATEROLE and
   CREATEDB): the owner role (the user of ``V2V_MIGRATION_DATABASE_URL``) and the service role
   (the user of ``DATABASE_URL``) exist and may log in, with the password each URL carries, sent
   as a SCRAM verifier computed here (the clear password never reaches the server, or its log);
   the database both URLs name exists and belongs to the owner. On that database, whatever an
   earlier set-up left owned by another role in schema ``public`` passes to the owner, and
   PUBLIC may not create objects there (already so on PostgreSQL 15 and later).
2. As the owner: the migrations, to the newest revision.
3. As the owner: the service role may use the schema; SELECT, INSERT and UPDATE on every table
   (the service deletes nothing: history is never rewritten), except the audit log (SELECT and
   INSERT only: it is append-only) and Alembic's version table (SELECT only); USAGE on every
   sequence; and the same by default on tables later migrations create. Not being the owner, the
   service role cannot ALTER, DROP or TRUNCATE a table or disable a trigger.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from api import migrate
from api.db import make_engine, normalise_url
from pathway.errors import InputError

APPEND_ONLY = ("audit_log", "step_records", "custody_events")  # what happened, and who did what
SCHEMA_VERSION = "alembic_version"


@dataclass(frozen=True)
class Login:
    role: str
    password: str | None


@dataclass(frozen=True)
class Plan:
    """Who is who, read from the three URLs (nothing else names a role or the database)."""

    admin: URL
    owner_url: URL
    service_url: URL

    @property
    def database(self) -> str:
        return self.owner_url.database

    @property
    def owner(self) -> Login:
        return Login(self.owner_url.username, self.owner_url.password)

    @property
    def service(self) -> Login:
        return Login(self.service_url.username, self.service_url.password)


def plan(admin_url: str | None, owner_url: str | None, service_url: str) -> Plan:
    """The three URLs checked: PostgreSQL, one server and database, two different named roles.
    ``InputError`` names the setting at fault (never its value: URLs carry passwords)."""
    urls = {}
    for setting, url in (
        ("V2V_ADMIN_DATABASE_URL", admin_url),
        ("V2V_MIGRATION_DATABASE_URL", owner_url),
        ("DATABASE_URL", service_url),
    ):
        if not url:
            raise InputError("", setting, "needed by --roles")
        parsed = make_url(normalise_url(url))
        if parsed.get_backend_name() != "postgresql":
            raise InputError("", setting, "--roles is for PostgreSQL: a postgresql:// URL")
        urls[setting] = parsed
    admin, owner, service = urls.values()
    for setting, url in (("V2V_MIGRATION_DATABASE_URL", owner), ("DATABASE_URL", service)):
        if not url.username or not url.database:
            raise InputError("", setting, "must name a user (the role) and a database")
        if (url.host, url.port) != (admin.host, admin.port):
            raise InputError("", setting, "must be on the same server as V2V_ADMIN_DATABASE_URL")
    if owner.database != service.database:
        raise InputError("", "DATABASE_URL", "must name the same database as V2V_MIGRATION_DATABASE_URL")
    if owner.username == service.username:
        raise InputError("", "DATABASE_URL", "must use another role than V2V_MIGRATION_DATABASE_URL")
    return Plan(admin, owner, service)


def _connect(url: URL, database: str | None = None) -> psycopg.Connection:
    target = url.set(drivername="postgresql", database=database or url.database)
    return psycopg.connect(target.render_as_string(hide_password=False), autocommit=True)


def provision(roles: Plan) -> None:
    """Roles, database, ownership, migrations and grants, as the module says; idempotent."""
    with _connect(roles.admin) as admin:
        _refuse_superusers(admin, roles)
        for login in (roles.owner, roles.service):
            _ensure_role(admin, login)
        _ensure_database(admin, roles.database, roles.owner.role)
    with _connect(roles.admin, roles.database) as admin:
        _hand_over(admin, roles.owner.role)
    engine = make_engine(roles.owner_url.render_as_string(hide_password=False))
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    with _connect(roles.owner_url) as owner:
        _grant(owner, roles.database, roles.owner.role, roles.service.role)


def _refuse_superusers(admin: psycopg.Connection, roles: Plan) -> None:
    """Neither role may be a superuser (or the administrator itself): least privilege would be void,
    and this module would take the superuser's rights away."""
    for setting, login in (("V2V_MIGRATION_DATABASE_URL", roles.owner), ("DATABASE_URL", roles.service)):
        row = admin.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (login.role,)).fetchone()
        if login.role == roles.admin.username or (row and row[0]):
            raise InputError("", setting, "its user is a superuser or the administrator: use a role of its own")


def _ensure_role(admin: psycopg.Connection, login: Login) -> None:
    exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login.role,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    statement = sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(sql.Identifier(login.role))
    if login.password:
        verifier = admin.pgconn.encrypt_password(login.password.encode(), login.role.encode(), b"scram-sha-256")
        statement += sql.SQL(" PASSWORD {}").format(sql.Literal(verifier.decode()))
    admin.execute(statement)


def _ensure_database(admin: psycopg.Connection, database: str, owner: str) -> None:
    exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
    verb = "ALTER DATABASE {} OWNER TO {}" if exists else "CREATE DATABASE {} OWNER {}"
    admin.execute(sql.SQL(verb).format(sql.Identifier(database), sql.Identifier(owner)))


def _hand_over(admin: psycopg.Connection, owner: str) -> None:
    """Tables first (their sequences follow them), then loose sequences, then functions."""
    admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    for kinds, alter in ((("r", "p", "v", "m"), "TABLE"), (("S",), "SEQUENCE")):
        names = admin.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = ANY(%s) AND pg_get_userbyid(c.relowner) <> %s",
            (list(kinds), owner),
        ).fetchall()
        for (name,) in names:
            admin.execute(
                sql.SQL("ALTER {} {} OWNER TO {}").format(
                    sql.SQL(alter), sql.Identifier("public", name), sql.Identifier(owner)
                )
            )
    functions = admin.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> %s",
        (owner,),
    ).fetchall()
    for (signature,) in functions:  # regprocedure text is already quoted as an identifier needs
        admin.execute(sql.SQL("ALTER FUNCTION {} OWNER TO {}").format(sql.SQL(signature), sql.Identifier(owner)))


def _grant(owner: psycopg.Connection, database: str, owner_role: str, service_role: str) -> None:
    service = sql.Identifier(service_role)
    statements = [
        ("GRANT CONNECT ON DATABASE {db} TO {service}", {"db": sql.Identifier(database)}),
        ("GRANT USAGE ON SCHEMA public TO {service}", {}),
        ("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {service}", {}),  # from a clean slate, each time
        ("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {service}", {}),
        ("REVOKE INSERT, UPDATE ON {table} FROM {service}", {"table": sql.Identifier(SCHEMA_VERSION)}),
        *(("REVOKE UPDATE ON {table} FROM {service}", {"table": sql.Identifier(table)}) for table in APPEND_ONLY),
        ("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {service}", {}),
        (
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
            "GRANT SELECT, INSERT, UPDATE ON TABLES TO {service}",
            {"owner": sql.Identifier(owner_role)},
        ),
        (
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT USAGE ON SEQUENCES TO {service}",
            {"owner": sql.Identifier(owner_role)},
        ),
    ]
    with owner.transaction():
        for text, names in statements:
            owner.execute(sql.SQL(text).format(service=service, **names))
