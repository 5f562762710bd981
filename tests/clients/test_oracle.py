"""DESIGN §4 test oracle: for every query Q and oracle token T,
sluice(Q, T) equals DuckDB(Q) over T's secure views, or sluice refuses Q
because it names a column/table outside them. Also the §4.5 ordering probes.

Ids: ``test_oracle_query[<token>-<query id>]``; the terminal summary prints
compared / refused / mismatch counts per token.
"""

from __future__ import annotations

import pytest

from oracle import Oracle, mentions
from oracle_queries import EXPECTED_OUTCOMES, QUERIES, Query, expected_totals, probe_queries
from tokens import ORACLE_TOKENS, PROBE_ROWS, PROBES

CASES = [(tok, q) for tok in ORACLE_TOKENS for q in QUERIES]
PROBE_CASES = [
    (tok, table, pred, pid, sql)
    for tok, probes in PROBES.items()
    for table, pred in probes
    for pid, sql in probe_queries(table, pred)
]


def test_query_set():
    """279 queries for each of the 4 oracle tokens; EXPECTED_OUTCOMES covers
    every token and every query."""
    assert len(QUERIES) == 279
    assert len(ORACLE_TOKENS) == 4 and set(EXPECTED_OUTCOMES) == set(ORACLE_TOKENS)
    for tok, outcomes in EXPECTED_OUTCOMES.items():
        assert sum(outcomes["queries"]) == len(QUERIES), tok
        assert sum(outcomes["probes"]) == sum(1 for t, *_ in PROBE_CASES if t == tok), tok


@pytest.mark.parametrize(
    "token_key,query", CASES, ids=[f"{tok}-{q.id}" for tok, q in CASES]
)
def test_oracle_query(oracle: Oracle, token_key: str, query: Query):
    oracle.check(token_key, query)


@pytest.mark.parametrize(
    "token_key,table,predicate,probe_id,sql",
    PROBE_CASES,
    ids=[f"{tok}-{table.split('.')[-1]}-{i}-{pid}" for i, (tok, table, pred, pid, sql) in enumerate(PROBE_CASES)],
)
def test_probe_hidden_rows_never_evaluated(oracle: Oracle, token_key, table, predicate, probe_id, sql):
    """A user expression that would fail on a hidden row must not fail:
    policy predicates are evaluated first (DESIGN §4.5)."""
    db = oracle.db(token_key)
    view = db.views[table]
    refs_hidden = any(mentions(predicate, c) for c in view.hidden_columns)
    if not refs_hidden:
        # Preconditions of the probe, checked on the data: the predicate
        # holds on rows of the table (PROBE_ROWS of them) and on no row the
        # token can see.
        raw = oracle._full.sql(f"SELECT count(*) FROM {table} WHERE {predicate}").fetchall()[0][0]
        vis = db.con.sql(f"SELECT count(*) FROM {table} WHERE {predicate}").fetchall()[0][0]
        assert (raw, vis) == (PROBE_ROWS[(table, predicate)], 0), f"bad probe {predicate!r}: raw={raw} visible={vis}"
    q = Query(id=f"probe-{probe_id}", sql=sql)
    outcome = oracle.check(token_key, q, validate=False)
    assert outcome == ("refused" if refs_hidden else "compared")


def test_oracle_summary(oracle: Oracle):
    """Runs after the parametrised cases (file order): no mismatch, and
    after a full run each token's answers and refusals are exactly what
    the secure views answer and refuse (EXPECTED_OUTCOMES)."""
    ran = {tok: s.compared + s.refused + s.mismatches for tok, s in oracle.stats.items()}
    lines = [
        f"{tok}: compared={s.compared} refused={s.refused} mismatches={s.mismatches}"
        for tok, s in sorted(oracle.stats.items())
    ]
    print("\n".join(lines))
    assert sum(s.mismatches for s in oracle.stats.values()) == 0, "\n".join(lines)
    # A run selected with -k checks a part of the cases: only a full run has
    # the full counts.
    if all(ran.get(tok, 0) == sum(expected_totals(tok)) for tok in ORACLE_TOKENS):
        got = {tok: (oracle.stats[tok].compared, oracle.stats[tok].refused) for tok in ORACLE_TOKENS}
        assert got == {tok: expected_totals(tok) for tok in ORACLE_TOKENS}, lines
