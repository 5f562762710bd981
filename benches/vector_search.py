#!/usr/bin/env python3
"""Vector search benchmark: vector_search on Milvus through sluice against
the Milvus SDK directly, and exact top-k over Iceberg against DuckDB. Not
part of CI.

Usage (from the repository root, after ./scripts/test.sh created .venv):

    .venv/bin/python benches/vector_search.py [--rows 1000000] [--iterations 50] [--dir /tmp/sluice-vbench]

Uses the Milvus at SLUICE_TEST_MILVUS_URI (with the collections of
tests/clients/milvus_fixtures.py), or starts one with the test harness.
Builds the release binary and the `milvus_search` example, serves the demo
warehouse (--rows orders with 8-dim embeddings, Iceberg) plus the Milvus
catalog `vec`, and measures in one run:

  1. vector_search on the Milvus collection `docs` (k=10) through sluice
     Flight SQL (pyarrow.flight: GetFlightInfo + DoGet), p50, for a token
     without row rules and one whose row rule becomes the Milvus filter;
     baseline: the same search with milvus-sdk-rust directly (p50);
  2. exact top-k (k=10) over the Iceberg table with --rows rows through
     sluice, in rows/s; baseline: DuckDB's exact top-k over the same
     Parquet files (list_distance).

It prints p50s and the ratios. Machines here are noisy: run it more than once.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

import duckdb
import pyarrow.flight as flight

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import ROOT, TARGET, flight_query, gateway, sh  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tests", "clients"))
from milvus_fixtures import QUERY_VECTOR, collections_present, create_collections  # noqa: E402
from milvus_harness import MilvusServer  # noqa: E402

K = 10


def samples(fn, iterations, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iterations):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2), "p90_ms": round(times[int(0.9 * (len(times) - 1))], 2)}


def create_token(http_port, admin, body):
    req = urllib.request.Request(f"http://127.0.0.1:{http_port}/v1/tokens", data=json.dumps(body).encode(),
                                 method="POST",
                                 headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))["secret"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--dir", default="/tmp/sluice-vbench")
    args = ap.parse_args()

    env = dict(os.environ, CARGO_TARGET_DIR=TARGET)
    # One invocation, so the example shares the binary's feature set (and
    # its compiled DataFusion).
    sh("cargo", "build", "--release", "-p", "sluice", "-p", "sluice-connectors", "--bin", "sluice",
       "--example", "milvus_search", cwd=ROOT, env=env)
    sluice = os.path.join(TARGET, "release", "sluice")
    direct = os.path.join(TARGET, "release", "examples", "milvus_search")

    own = None
    uri = os.environ.get("SLUICE_TEST_MILVUS_URI")
    if not uri:
        own = MilvusServer(log_path=os.path.join(args.dir + "-milvus.log"))
        own.start()
        uri = own.uri
    try:
        if not collections_present(uri):
            create_collections(uri, verbose=False)
        # `vec`: each collection's own consistency (the fixtures use Strong,
        # so every read waits for Milvus' time tick); `vecb`: Bounded, where
        # the search itself is fast and sluice's overhead shows.
        os.environ.update({
            "SLUICE__CATALOGS__VEC__KIND": "milvus",
            "SLUICE__CATALOGS__VEC__URI": uri,
            "SLUICE__CATALOGS__VECB__KIND": "milvus",
            "SLUICE__CATALOGS__VECB__URI": uri,
            "SLUICE__CATALOGS__VECB__CONSISTENCY": "bounded",
        })
        with gateway(sluice, args.dir, args.rows, "bench-policy") as gw:
            tokens = json.load(open(os.path.join(args.dir, "tokens.json")))
            admin = tokens["tokens"]["admin"]["secret"]
            open_token = create_token(gw.http_port, admin, {
                "name": "bench-vectors", "max_sensitivity": 9,
                "grants": [{"table": "vec.default.docs", "columns": ["id", "title", "tenant", "embedding"]},
                           {"table": "vecb.default.docs", "columns": ["id", "title", "tenant", "embedding"]},
                           {"table": "lake.sales.orders", "columns": ["order_id", "region", "embedding"]}]})
            rule_token = create_token(gw.http_port, admin, {
                "name": "bench-vectors-acme", "attributes": {"tenant": "acme"}, "max_sensitivity": 9,
                "grants": [{"table": f"{c}.default.docs", "columns": ["id", "title", "tenant", "embedding"],
                            "allow_rules": ["tenant = token.tenant"]} for c in ("vec", "vecb")]})
            client = flight.FlightClient(f"grpc://127.0.0.1:{gw.flight_port}")

            def options(secret):
                return flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {secret}".encode())])

            vec = "[" + ", ".join(repr(x) for x in QUERY_VECTOR) + "]"
            milvus = {}
            for catalog, consistency in (("vec", ""), ("vecb", "bounded")):
                sql = f"SELECT id, title, _distance FROM vector_search('{catalog}.default.docs', {vec}, {K})"
                assert flight_query(client, options(open_token), sql) == K
                assert flight_query(client, options(rule_token), sql) == K
                out = subprocess.run([direct, uri, "docs", "embedding", str(K), str(args.iterations),
                                      ",".join(repr(x) for x in QUERY_VECTOR), "id,title", consistency],
                                     check=True, capture_output=True, text=True)
                baseline = json.loads(out.stdout)
                assert baseline["hits"] == K, baseline
                direct_p50 = baseline["p50_us"] / 1000
                open_s = samples(lambda: flight_query(client, options(open_token), sql), args.iterations)
                rule_s = samples(lambda: flight_query(client, options(rule_token), sql), args.iterations)
                milvus[f"docs_k10_{consistency or 'collection_default_strong'}"] = {
                    "direct_milvus_sdk_p50_ms": round(direct_p50, 2),
                    "sluice_flight_no_rules": open_s,
                    "sluice_flight_row_rule": rule_s,
                    "ratio_no_rules_p50": round(open_s["p50_ms"] / direct_p50, 2),
                    "ratio_row_rule_p50": round(rule_s["p50_ms"] / direct_p50, 2),
                }

            lake_vec = "[1.0, 0.5, -0.5, 0.25, 0.0, -1.0, 0.75, 0.1]"
            lake_sql = f"SELECT order_id, _distance FROM vector_search('lake.sales.orders', {lake_vec}, {K}, NULL, 'l2')"
            assert flight_query(client, options(open_token), lake_sql) == K
            exact = samples(lambda: flight_query(client, options(open_token), lake_sql), max(3, args.iterations // 10),
                            warmup=1)
            lake = __import__("tomllib").load(open(gw.config, "rb"))["catalogs"]["lake"]
            import glob
            files = glob.glob(os.path.join(lake["warehouse"].removeprefix("file://"), "**", "orders", "data",
                                           "*.parquet"), recursive=True)
            con = duckdb.connect()
            con.execute(f"CREATE VIEW orders AS SELECT * FROM read_parquet({files!r})")
            duck_sql = (f"SELECT order_id, list_distance(embedding::FLOAT[], {lake_vec}::FLOAT[]) AS d "
                        f"FROM orders ORDER BY d LIMIT {K}")
            duck = samples(lambda: con.execute(duck_sql).fetchall(), max(3, args.iterations // 10), warmup=1)

        print(json.dumps({
            "milvus": milvus,
            "iceberg_exact_topk": {
                "rows": args.rows,
                "sluice_flight": exact,
                "sluice_rows_per_s": round(args.rows / (exact["p50_ms"] / 1000)),
                "duckdb": duck,
                "duckdb_rows_per_s": round(args.rows / (duck["p50_ms"] / 1000)),
                "ratio_sluice_over_duckdb": round(exact["p50_ms"] / duck["p50_ms"], 2),
            },
        }, indent=2))
    finally:
        if own is not None:
            own.stop()


if __name__ == "__main__":
    main()
