#!/usr/bin/env python3
"""Trino HTTP frontend vs Flight SQL, end to end: 1M rows through the
`trino` client, through ADBC and through the raw Trino protocol from one
gateway. Not part of CI.

Usage (from the repository root, after ./scripts/test.sh created .venv):

    .venv/bin/python benches/trino_e2e.py [--rows 3000000] [--iterations 3] [--dir /tmp/sluice-trino-bench]

Like benches/e2e.py it builds the release binary and a demo warehouse with
--rows orders (sluice demo --no-serve), starts `sluice serve`, and creates a
policy token (row rule region = token.region, deny rule, hashed email;
row_limit above the stream). Then, against that one gateway in one run, it
streams 1M rows of

    SELECT order_id, region, customer_email, amount FROM lake.sales.orders LIMIT 1000000

(a) through the `trino` Python client (DB-API, fetchall: JSON pages decoded
    into Python rows), and
(b) through ADBC Flight SQL (fetch_arrow_table: Arrow batches),

and prints the medians, rows/s of each and the ratio (a)/(b). It also
times (c) the Trino protocol alone (POST and GET of every page with
`requests`, bytes read but not decoded), which separates sluice's side of
the Trino path from the Python client's JSON decoding. The demo
regions cycle eu/us/apac/eu/latam, so --rows must be at least 2.5M for 1M
visible rows; the script checks the row counts. Machines here are noisy:
run it more than once.
"""

import argparse
import json
import os
import statistics
import time

from e2e import ROOT, TARGET, gateway, sh  # the shared gateway setup (benches/e2e.py)

STREAM = "SELECT order_id, region, customer_email, amount FROM lake.sales.orders LIMIT 1000000"
EXPECTED_ROWS = 1_000_000


def timed(fn, iterations):
    """Median wall time in ms of ``fn`` (after one warm-up run) and the
    row count it returned."""
    rows = fn()
    times = []
    for _ in range(iterations):
        t = time.perf_counter()
        n = fn()
        times.append((time.perf_counter() - t) * 1000)
        if n != rows:
            raise AssertionError(f"row count changed between runs: {rows} then {n}")
    return statistics.median(times), rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=3_000_000)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/sluice-trino-bench")
    args = ap.parse_args()

    import adbc_driver_flightsql.dbapi as flightsql
    import trino
    from trino.auth import BasicAuthentication

    sh("cargo", "build", "--release", "-p", "sluice", "--bin", "sluice", cwd=ROOT,
       env=dict(os.environ, CARGO_TARGET_DIR=TARGET))
    sluice = os.path.join(TARGET, "release", "sluice")

    with gateway(sluice, args.dir, args.rows, "bench-trino-policy") as gw:
        secret, flight_port, http_port = gw.secret, gw.flight_port, gw.http_port

        trino_conn = trino.dbapi.connect(
            host="127.0.0.1", port=http_port, user="bench", http_scheme="http",
            auth=BasicAuthentication("bench", secret), allow_insecure_auth=True, request_timeout=300,
        )
        adbc_conn = flightsql.connect(
            f"grpc://127.0.0.1:{flight_port}",
            db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {secret}"}, autocommit=True,
        )

        def via_trino():
            cur = trino_conn.cursor()
            cur.execute(STREAM)
            return len(cur.fetchall())

        import base64
        import re
        import requests
        raw = requests.Session()
        raw.headers.update({
            "Authorization": "Basic " + base64.b64encode(f"bench:{secret}".encode()).decode(),
            "X-Trino-User": "bench",
        })
        next_re = re.compile(rb'"nextUri":"([^"]+)"')

        def via_raw_http():
            # The protocol alone: POST, then GET every nextUri, reading the
            # bytes without decoding them (server side + transport).
            body = raw.post(f"http://127.0.0.1:{http_port}/v1/statement", data=STREAM).content
            rows = 0
            while True:
                m = next_re.search(body)
                if not m:
                    break
                body = raw.get(m.group(1).decode()).content
                rows += body.count(b"],[") + 1 if b'"data":[[' in body else 0
            return rows

        def via_adbc():
            cur = adbc_conn.cursor()
            try:
                cur.execute(STREAM)
                return cur.fetch_arrow_table().num_rows
            finally:
                cur.close()

        adbc_ms, adbc_rows = timed(via_adbc, args.iterations)
        trino_ms, trino_rows = timed(via_trino, args.iterations)
        raw_ms, _ = timed(via_raw_http, args.iterations)
        for label, n in (("flight", adbc_rows), ("trino", trino_rows)):
            if n != EXPECTED_ROWS:
                raise SystemExit(f"{label} returned {n} rows, expected {EXPECTED_ROWS} (raise --rows?)")
        results = {
            "query": STREAM,
            "rows": EXPECTED_ROWS,
            "iterations": args.iterations,
            "trino_python_ms": round(trino_ms, 1),
            "flight_adbc_ms": round(adbc_ms, 1),
            "trino_rows_per_s": round(EXPECTED_ROWS / (trino_ms / 1000)),
            "flight_rows_per_s": round(EXPECTED_ROWS / (adbc_ms / 1000)),
            "trino_over_flight": round(trino_ms / adbc_ms, 2),
            "trino_protocol_only_ms": round(raw_ms, 1),
            "trino_protocol_rows_per_s": round(EXPECTED_ROWS / (raw_ms / 1000)),
            "trino_protocol_over_flight": round(raw_ms / adbc_ms, 2),
        }
        print(json.dumps(results, indent=2))
        trino_conn.close()
        adbc_conn.close()


if __name__ == "__main__":
    main()
