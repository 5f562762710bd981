"""Same token, same query: the Trino frontend answers exactly what the
Flight SQL frontend answers (masks, row rules, hidden columns and tables
included), or both refuse with the same kind of error. Every oracle token ×
every oracle query, plus the §4.5 ordering probes. The Flight side is the
answer ``test_oracle`` already checked against DuckDB (recorded by
``conns.query_recorded``; run here if that test did not run).

Ids: ``test_trino_matches_flight[<token>-<query id>]``; the terminal
summary prints compared / refused / mismatch counts per token.
"""

from __future__ import annotations

import pytest

import trino_harness
from fixtures import TABLE_CLASSES
from oracle_queries import QUERIES, expected_totals, probe_queries
from policy_views import hidden_columns_by_token
from tokens import ORACLE_TOKENS, PROBES
from trino_harness import TRINO_ORACLES, run_dbapi
from trino_oracle import TrinoVsFlight

CASES = [(tok, q) for tok in ORACLE_TOKENS for q in QUERIES]
PROBE_CASES = [
    (tok, sql)
    for tok, probes in PROBES.items()
    for table, pred in probes
    for _, sql in probe_queries(table, pred)
]


@pytest.fixture(scope="session")
def trino_oracle(conns, trino_conns, lake):
    hidden = hidden_columns_by_token(ORACLE_TOKENS, lake.sources, TABLE_CLASSES)
    o = TrinoVsFlight(
        run_flight=lambda key, sql: conns.query_recorded(key, sql),
        # one shared trino connection per token; a new cursor per query
        run_trino=lambda key, sql: run_dbapi(trino_conns.get(key), sql),
        hidden_columns=hidden,
    )
    TRINO_ORACLES.append(o)
    return o


def test_helpers_self_check():
    """The normalisation and comparison helpers, without a server."""
    trino_harness._self_check()


@pytest.mark.parametrize("token_key,query", CASES, ids=[f"{tok}-{q.id}" for tok, q in CASES])
def test_trino_matches_flight(trino_oracle, token_key, query):
    trino_oracle.check(token_key, query.sql, ordered=query.ordered, names=query.names)


@pytest.mark.parametrize("token_key,sql", PROBE_CASES, ids=[f"{tok}-probe{i}" for i, (tok, _) in enumerate(PROBE_CASES)])
def test_trino_probe_matches_flight(trino_oracle, token_key, sql):
    trino_oracle.check(token_key, sql, ordered=False, names=False)


def test_trino_oracle_summary(trino_oracle):
    """Runs after the cases above (file order): no mismatch, and after a
    full run both frontends answered and refused exactly what the secure
    views answer and refuse (oracle_queries.EXPECTED_OUTCOMES), so a
    frontend that refuses everything cannot pass."""
    lines = trino_oracle.summary_lines()
    print("\n".join(lines))
    stats = trino_oracle.stats
    assert sum(s.mismatches for s in stats.values()) == 0, "\n".join(lines)
    ran = {tok: s.compared + s.refused + s.mismatches for tok, s in stats.items()}
    # A run selected with -k checks a part of the cases: only a full run has
    # the full counts.
    if all(ran.get(tok, 0) == sum(expected_totals(tok)) for tok in ORACLE_TOKENS):
        got = {tok: (stats[tok].compared, stats[tok].refused) for tok in ORACLE_TOKENS}
        assert got == {tok: expected_totals(tok) for tok in ORACLE_TOKENS}, lines
