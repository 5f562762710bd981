"""Runs last (file order): every log and every audit record that the
suite's gateways wrote is searched for the token secrets the suite used —
admin secrets, created tokens — and for anything shaped like a secret
(``slc_`` + 43 characters: also the made-up ones that negative tests sent).
None may appear. Audit records are read from the embedded stores (SQLite)
of the servers the suite started; servers on a Postgres store are searched
through their logs only."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import harness

SECRET_SHAPE = re.compile(rb"slc_[A-Za-z0-9_-]{43}")


def _audit_dump(server) -> bytes:
    url = server.store_url or ""
    if not url.startswith("sqlite://"):
        return b""
    path = Path(url.removeprefix("sqlite://").split("?", 1)[0])
    if not path.exists():
        return b""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        has = con.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit_log'").fetchone()
        if not has:
            return b""
        rows = con.execute("SELECT * FROM audit_log").fetchall()
    finally:
        con.close()
    return "\n".join(repr(r) for r in rows).encode()


def test_no_secret_in_any_log_or_audit_record():
    servers = list(harness.STARTED)
    assert servers, "the suite started no server"
    secrets = {s.encode() for s in harness.SECRETS}
    assert secrets, "the suite used no secret"
    searched = audited = 0
    leaks = []
    for server in servers:
        for name, text in (("log", server.log_path.read_bytes() if server.log_path.exists() else b""),
                           ("audit_log", _audit_dump(server))):
            if not text:
                continue
            searched += 1
            audited += name == "audit_log"
            for s in secrets:
                if s in text:
                    leaks.append(f"{server.workdir} {name}: a used secret ({s[:8]!r}…)")
            for m in SECRET_SHAPE.finditer(text):
                leaks.append(f"{server.workdir} {name}: secret-shaped text {m.group()[:8]!r}…")
    # How many logs and audit stores there are depends on which tests ran
    # (-k): at least one of each must have been searched.
    assert searched > 0
    assert audited > 0, "no audit records were found to search"
    assert not leaks, "\n".join(sorted(set(leaks))[:50])
