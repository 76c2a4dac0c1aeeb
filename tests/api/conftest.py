"""API test fixtures: a real database (SQLite file and PostgreSQL), migrated, with the small
fixture cohort planned and confirmed, and one token per role. The helpers they use, and that
the tests use, are in ``tests/builders.py``.

PostgreSQL is the one on 127.0.0.1:5432 (database ``test``; ``make test`` starts it);
V2V_TEST_POSTGRES_URL points elsewhere. Each test gets an empty ``public`` schema.
"""

from __future__ import annotations

import warnings

import pytest

from api.settings import Settings
from api.setup import new_token
from tests.builders import ROLES, fresh_database, make_settings, plan_small_cohort

warnings.filterwarnings("ignore", message=".*httpx2.*")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    return fresh_database(request.param, tmp_path)


@pytest.fixture
def settings(database_url) -> Settings:
    return make_settings(database_url, alternatives=2)


@pytest.fixture
def small_site(settings) -> Settings:
    """The small cohort (9 patients) planned and confirmed as plan version 2 (1 is the empty start)."""
    return plan_small_cohort(settings)


@pytest.fixture
def tokens(small_site) -> dict[str, str]:
    return {role: new_token(small_site, f"test-{role}", role) for role in ROLES}


@pytest.fixture
def client(small_site, tokens):
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(small_site), raise_server_exceptions=False) as test_client:
        test_client.tokens = tokens
        yield test_client
