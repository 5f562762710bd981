#!/usr/bin/env python3
"""End-to-end benchmark of sluice: a policy token over Flight SQL against
in-process DataFusion and DuckDB on the same data. Not part of CI.

Usage (from the repository root, after ./scripts/test.sh created .venv):

    .venv/bin/python benches/e2e.py [--rows 10000000] [--iterations 5] [--dir /tmp/sluice-bench]

It builds the release binary, a demo warehouse with --rows orders (Iceberg,
written by sluice's demo), starts `sluice serve`, creates a policy token
(row rule region = token.region, deny rule, hashed email; row_limit high
enough for the stream), and measures in one run:

  (a) in-process DataFusion without policy (examples/raw_query.rs),
  (b) sluice Flight SQL -> pyarrow with the policy token,
  (c) DuckDB over the same Parquet data files,

for an aggregate and a 1M-row stream. It prints medians and the ratios
(b)/(a) and (b)/(c). Machines here are noisy: run it more than once.
"""

import argparse
import contextlib
import glob
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import types
import tomllib
import urllib.request

import duckdb
import pyarrow.flight as flight

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/sluice-target"))

AGG = "SELECT region, sum(amount), count(*) FROM lake.sales.orders GROUP BY region"
STREAM = "SELECT order_id, region, customer_email, amount FROM lake.sales.orders LIMIT 1000000"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(*cmd, **kw):
    print("+", " ".join(cmd), file=sys.stderr)
    return subprocess.run(cmd, check=True, **kw)


@contextlib.contextmanager
def gateway(sluice, directory, rows, token_name, env_extra=None):
    """A demo warehouse with ``rows`` orders in ``directory``, served by the
    release binary ``sluice`` on free ports, and a policy token
    ``token_name`` (row rule region = token.region, deny rule, hashed email,
    row_limit above the 1M-row stream). Yields ``secret``, ``flight_port``,
    ``http_port``, ``config``, ``admin`` (the admin secret) and ``pid`` (the
    server's); stops the server on exit. Extra ``env`` settings (e.g.
    ``SLUICE__LIMITS__…``) reach the server."""
    flight_port, http_port = free_port(), free_port()
    env = dict(os.environ, SLUICE__SERVER__FLIGHT_ADDR=f"127.0.0.1:{flight_port}",
               SLUICE__SERVER__HTTP_ADDR=f"127.0.0.1:{http_port}", **(env_extra or {}))
    t = time.perf_counter()
    sh(sluice, "demo", "--dir", directory, "--rows", str(rows), "--no-serve", env=env, stdout=subprocess.DEVNULL)
    print(f"warehouse ready in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    tokens = json.load(open(os.path.join(directory, "tokens.json")))
    config = os.path.join(directory, "sluice.toml")
    server = subprocess.Popen([sluice, "serve", "--config", config], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(os.path.join(directory, "serve.log"), "w"), start_new_session=True)
    try:
        wait_healthy(http_port, os.path.join(directory, "serve.log"))
        admin = tokens["tokens"]["admin"]["secret"]
        body = json.dumps({
            "name": token_name, "attributes": {"region": "eu"}, "max_sensitivity": 3,
            "row_limit": 2_000_000,
            "grants": [{"table": "lake.sales.orders",
                        "columns": ["order_id", "region", "customer_email", "amount"],
                        "masks": {"customer_email": "hash"},
                        "allow_rules": ["region = token.region"],
                        "deny_rules": ["amount > 100000"]}]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{http_port}/v1/tokens", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
        secret = json.load(urllib.request.urlopen(req))["secret"]
        yield types.SimpleNamespace(secret=secret, flight_port=flight_port, http_port=http_port, config=config,
                                    admin=admin, pid=server.pid)
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=30)


def wait_healthy(http_port: int, log: str) -> None:
    """Waits up to a minute for a gateway's /health; exits naming its log
    when it does not answer."""
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"sluice did not start; see {log}")


def flight_query(client, options, sql):
    """CommandStatementQuery + DoGet; returns the number of rows."""
    any_msg = encode_any("type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery", encode_string(1, sql))
    info = client.get_flight_info(flight.FlightDescriptor.for_command(any_msg), options)
    rows = 0
    for ep in info.endpoints:
        reader = client.do_get(ep.ticket, options)
        while True:
            try:
                chunk = reader.read_chunk()
            except StopIteration:
                break
            if chunk.data is not None:
                rows += chunk.data.num_rows
    return rows


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_string(field, s):
    data = s.encode() if isinstance(s, str) else s
    return varint(field << 3 | 2) + varint(len(data)) + data


def encode_any(type_url, value):
    return encode_string(1, type_url) + encode_string(2, value)


def timed(fn, iterations):
    fn()  # warm-up
    times = []
    for _ in range(iterations):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--dir", default="/tmp/sluice-bench")
    args = ap.parse_args()

    sh("cargo", "build", "--release", "-p", "sluice", "--bin", "sluice", "--example", "raw_query", cwd=ROOT,
       env=dict(os.environ, CARGO_TARGET_DIR=TARGET))
    sluice = os.path.join(TARGET, "release", "sluice")
    raw = os.path.join(TARGET, "release", "examples", "raw_query")

    with gateway(sluice, args.dir, args.rows, "bench-policy") as gw:
        secret, flight_port, config = gw.secret, gw.flight_port, gw.config

        client = flight.FlightClient(f"grpc://127.0.0.1:{flight_port}")
        options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {secret}".encode())])

        lake = tomllib.load(open(config, "rb"))["catalogs"]["lake"]
        demo = {"catalog_uri": lake["uri"], "warehouse": lake["warehouse"]}
        files = glob.glob(os.path.join(demo["warehouse"].removeprefix("file://"), "**", "orders", "data", "*.parquet"),
                          recursive=True)
        assert files, "no parquet files found for sales.orders"
        con = duckdb.connect()
        con.execute(f"CREATE VIEW orders AS SELECT * FROM read_parquet({files!r})")

        def raw_run(sql):
            out = subprocess.run([raw, demo["catalog_uri"], demo["warehouse"], "lake", str(args.iterations + 1), sql],
                                 check=True, capture_output=True, text=True)
            return statistics.median(json.loads(out.stdout)["times_ms"][1:])

        results = {}
        for label, sql in (("aggregate", AGG), ("stream_1M", STREAM)):
            a = raw_run(sql)
            b = timed(lambda: flight_query(client, options, sql), args.iterations)
            duck_sql = sql.replace("lake.sales.orders", "orders")
            c = timed(lambda: con.execute(duck_sql).to_arrow_table(), args.iterations)
            results[label] = {"datafusion_ms": round(a, 1), "sluice_flight_ms": round(b, 1), "duckdb_ms": round(c, 1),
                              "sluice_over_datafusion": round(b / a, 2), "sluice_over_duckdb": round(b / c, 2)}
        print(json.dumps({"rows": args.rows, "iterations": args.iterations, "results": results}, indent=2))


if __name__ == "__main__":
    main()
