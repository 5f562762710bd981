"""DESIGN §4 oracle over seeded random queries (oracle_gen.py): a short run
in the normal suite. For every token of tokens.GENERATED_ORACLE_TOKENS (the
four hand-written oracle tokens and SCALE_ORACLE_TOKENS):

* QUERIES_PER_TOKEN generated queries over Flight SQL equal DuckDB over the
  token's secure views, or are refused for a named reason ("not found or
  not allowed" naming the column, "not found" for a table);
* the same queries over Trino equal the Flight SQL answers (or are refused
  with the matching Trino error kind);
* PREPARED_PER_TOKEN parameterised queries run as Flight SQL prepared
  statements with bound values equal DuckDB running them with the values
  as literals.

Zero mismatches; every case runs, nothing is skipped. The long run of the
same machinery is ``benches/oracle_scale.py --queries 10000``.
SLUICE_ORACLE_SEED picks another seed (default SEED) to explore.
"""

from __future__ import annotations

import os

import pytest

from fixtures import TABLE_CLASSES
from generated_oracle import GeneratedRun
from oracle import Oracle
from oracle_gen import KNOWN_GATEWAY_BUGS, generate, generate_prepared
from policy_views import hidden_columns_by_token
from tokens import GENERATED_ORACLE_TOKENS
from trino_harness import run_dbapi

SEED = int(os.environ.get("SLUICE_ORACLE_SEED", "20240601"))
QUERIES_PER_TOKEN = 150
PREPARED_PER_TOKEN = 30
TOKENS = list(GENERATED_ORACLE_TOKENS)


@pytest.fixture(scope="module")
def generated(lake, conns, trino_conns):
    oracle = Oracle(GENERATED_ORACLE_TOKENS, lake.sources, TABLE_CLASSES, lambda key, sql: conns.query(key, sql))
    hidden = hidden_columns_by_token(GENERATED_ORACLE_TOKENS, lake.sources, TABLE_CLASSES)
    run = GeneratedRun(
        oracle,
        run_prepared=lambda key, sql, params: conns.query(key, sql, params),
        # one trino connection per token, a new cursor per query
        run_trino=lambda key, sql: run_dbapi(trino_conns.get(key), sql),
        hidden_columns=hidden,
    )
    yield run
    oracle.close()


def _fail_on_problems(run: GeneratedRun, key: str, protocol: str) -> None:
    c = run.counts[(key, protocol)]
    assert c.mismatches == 0 and c.generator_bugs == 0, (
        f"{key} over {protocol}: {c.mismatches} mismatches, {c.generator_bugs} generator bugs\n"
        + "\n".join(c.details)
    )


def test_generator_is_deterministic_and_valid_on_the_full_lake(lake):
    """Same seed, same queries; another seed, other queries; every query
    (and every prepared statement's literal form) runs on the unrestricted
    lake, and the known-bug list documents a repro for each entry."""
    oracle = Oracle(GENERATED_ORACLE_TOKENS, lake.sources, TABLE_CLASSES, run_sluice=None)
    try:
        for key in TOKENS:
            a, b = generate(key, SEED, QUERIES_PER_TOKEN), generate(key, SEED, QUERIES_PER_TOKEN)
            assert a == b, key
            assert [q.sql for q in generate(key, SEED + 1, 50)] != [q.sql for q in a[:50]], key
            p1, p2 = generate_prepared(key, SEED, PREPARED_PER_TOKEN), generate_prepared(key, SEED, PREPARED_PER_TOKEN)
            assert p1 == p2, key
            for q in a + [p.query for p in p1]:
                oracle.validate_on_full(q)
            for p in p1:
                assert p.sql.count("?") == len(p.params), p
    finally:
        oracle.close()
    for feature, (why, repro) in KNOWN_GATEWAY_BUGS.items():
        assert why and ":" in repro, feature


@pytest.mark.parametrize("key", TOKENS)
def test_generated_queries_over_flight_sql_equal_the_secure_views(generated, key):
    generated.flight(key, generate(key, SEED, QUERIES_PER_TOKEN))
    _fail_on_problems(generated, key, "flight")


@pytest.mark.parametrize("key", TOKENS)
def test_generated_queries_over_trino_equal_flight_sql(generated, key):
    # The Flight answers recorded by the test above (or fetched now) are the reference.
    generated.trino_(key, generate(key, SEED, QUERIES_PER_TOKEN))
    _fail_on_problems(generated, key, "trino")


@pytest.mark.parametrize("key", TOKENS)
def test_prepared_statements_with_bound_parameters_equal_the_secure_views(generated, key):
    generated.prepared(key, generate_prepared(key, SEED, PREPARED_PER_TOKEN))
    _fail_on_problems(generated, key, "prepared")


def test_generated_run_both_answers_and_refuses(generated):
    """Runs after the cases above (file order). Every token both got
    answers and refusals over Flight SQL, so the run exercised both halves
    of the oracle; a gateway that refuses everything cannot pass (each
    refusal of a query the secure views answer is a mismatch above)."""
    lines = generated.summary_lines()
    print("\n".join(lines))
    for key in TOKENS:
        c = generated.counts.get((key, "flight"))
        if c is None or c.total < QUERIES_PER_TOKEN:
            continue  # a -k selection did not run this token
        assert c.compared > 0 and c.refused > 0, (key, lines)
    assert sum(c.mismatches + c.generator_bugs for c in generated.counts.values()) == 0, "\n".join(lines)
