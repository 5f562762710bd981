#!/usr/bin/env python3
"""The DESIGN §4 leak oracle at scale (not in CI): seeded random queries
(tests/clients/oracle_gen.py) x every generated-oracle token x Flight SQL
and Trino, plus prepared statements with bound parameters over Flight SQL.

Usage (from the repository root, with the test venv and a built gateway):

    SLUICE_BIN=/path/to/sluice .venv/bin/python benches/oracle_scale.py \\
        --queries 10000 --seed 1 [--prepared 1000] [--tokens a,b] [--protocols flight,trino,prepared]

It writes the test lake into a temporary directory, starts `sluice serve`
on it (tests/clients/harness.py), creates the tokens of
tokens.GENERATED_ORACLE_TOKENS, and for each token generates --queries
queries (and --prepared parameterised ones, default a tenth) from --seed.
Per token and protocol it prints compared / refused / mismatch counts and
wall time, then every mismatch (up to --details per token and protocol).
Exit status 1 if there is any mismatch or generator bug. The same seed
gives the same queries: a mismatch reproduces with its query id.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "clients"))

from fixtures import TABLE_CLASSES, build_lake  # noqa: E402
from generated_oracle import PROTOCOLS, GeneratedRun  # noqa: E402
from harness import SluiceServer, adbc_query, sluice_binary  # noqa: E402
from oracle import Oracle  # noqa: E402
from oracle_gen import generate, generate_prepared  # noqa: E402
from policy_views import hidden_columns_by_token  # noqa: E402
from tokens import GENERATED_ORACLE_TOKENS  # noqa: E402
from trino_harness import run_dbapi, trino_connect  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=10000, help="generated queries per token (default 10000)")
    ap.add_argument("--prepared", type=int, default=None, help="prepared statements per token (default queries/10)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tokens", default=",".join(GENERATED_ORACLE_TOKENS))
    ap.add_argument("--protocols", default=",".join(PROTOCOLS))
    ap.add_argument("--details", type=int, default=10, help="mismatches shown per token and protocol")
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    args = ap.parse_args()
    tokens = [t for t in args.tokens.split(",") if t]
    protocols = [p for p in args.protocols.split(",") if p]
    unknown = [t for t in tokens if t not in GENERATED_ORACLE_TOKENS] + [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        ap.error(f"unknown tokens/protocols: {unknown}")
    n_prepared = args.queries // 10 if args.prepared is None else args.prepared

    work = Path(args.dir or tempfile.mkdtemp(prefix="sluice-oracle-scale-"))
    started = time.monotonic()
    lake = build_lake(work / "lake")
    server = SluiceServer(binary=sluice_binary(), workdir=work / "sluice", lake=lake)
    server.start()
    conns, trino_conns = {}, {}
    try:
        secrets = {k: server.create_token(GENERATED_ORACLE_TOKENS[k])["secret"] for k in tokens}

        def flight_conn(key):
            if key not in conns:
                conns[key] = server.adbc_connect(secrets[key])
            return conns[key]

        def trino_conn(key):
            if key not in trino_conns:
                trino_conns[key] = trino_connect(server, secrets[key])
            return trino_conns[key]

        oracle = Oracle(GENERATED_ORACLE_TOKENS, lake.sources, TABLE_CLASSES,
                        lambda key, sql: adbc_query(flight_conn(key), sql))
        hidden = hidden_columns_by_token({k: GENERATED_ORACLE_TOKENS[k] for k in tokens}, lake.sources,
                                         TABLE_CLASSES)
        run = GeneratedRun(
            oracle,
            run_prepared=lambda key, sql, params: adbc_query(flight_conn(key), sql, params),
            run_trino=(lambda key, sql: run_dbapi(trino_conn(key), sql)) if "trino" in protocols else None,
            hidden_columns=hidden,
            max_details=args.details,
        )
        print(f"seed {args.seed}: {args.queries} queries + {n_prepared} prepared per token, "
              f"tokens {tokens}, protocols {protocols}; work dir {work}", flush=True)
        for key in tokens:
            t0 = time.monotonic()
            queries = generate(key, args.seed, args.queries)
            if "flight" in protocols or "trino" in protocols:
                run.flight(key, queries)  # the Trino side compares with these Flight answers
            if "trino" in protocols:
                run.trino_(key, queries)
            if "prepared" in protocols and n_prepared:
                run.prepared(key, generate_prepared(key, args.seed, n_prepared))
            print(f"  {key}: {time.monotonic() - t0:.0f}s", flush=True)
            run._flight_answers.clear()  # bounded memory across tokens
        oracle.close()
    finally:
        for c in list(conns.values()) + list(trino_conns.values()):
            try:
                c.close()
            except Exception:  # noqa: BLE001 - teardown
                pass
        server.close()
    print("\n".join(run.summary_lines()))
    problems = run.problem_lines()
    if problems:
        print("\nMISMATCHES / GENERATOR BUGS:")
        print("\n".join(problems))
    print(f"wall time {time.monotonic() - started:.0f}s")
    bad = sum(c.mismatches + c.generator_bugs for c in run.counts.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
