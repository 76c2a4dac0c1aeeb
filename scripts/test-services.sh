#!/usr/bin/env bash
# What the test suite needs besides Python packages, installed (apt) and started if it is
# missing; `make test` runs this before pytest, and `.ci/run` calls `make test`.
#   - Debian's Chromium: the browser the web pages' end-to-end tests drive (tests/e2e, Playwright);
#   - PostgreSQL: the API's tests run against it (127.0.0.1:5432, trust auth, database `test`).
# Whatever is there and running already is left alone. Installing needs root (apt-get).
set -euo pipefail

apt_install() {
    if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

[ -x /usr/bin/chromium ] || apt_install chromium

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt_install postgresql
    version="$(ls /etc/postgresql)"
    # local test server only: trust connections from this machine
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "/etc/postgresql/$version/main/pg_hba.conf"
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
    psql -h 127.0.0.1 -U postgres -c 'create database test' >/dev/null
fi
