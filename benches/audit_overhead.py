#!/usr/bin/env python3
"""Cost of auditing, metrics and request logging: median Flight SQL latency
with the audit record, request metrics and per-request logs on versus off.
Not part of CI.

Usage (from the repository root, after ./scripts/test.sh created .venv):

    .venv/bin/python benches/audit_overhead.py [--queries 400] [--rounds 3] [--dir /tmp/sluice-audit-bench]

It builds the release binary and a small demo warehouse, then serves it
alternately in two configurations, in the same run:

  (on)  the defaults: every request audited to the SQLite store, request
        metrics, one JSON log line per request (`log.format = "json"`,
        filter `info`);
  (off) `[audit] enabled = false` (no audit record, no request metrics),
        `[tracing] enabled = false` (no trace context) and log filter
        `warn` (no per-request log lines).

Rate limits are off in both. Each round measures --queries sequential small
Flight SQL statements (GetFlightInfo + DoGet, about 15 rows, policy token with a
row rule and a mask) per configuration, alternating on/off so drift hits
both. It prints the median latency of each and the ratio on/off (target
<= 1.03). The audit layer's bookkeeping (request id, facts) runs in both
configurations; "off" removes the record, its metrics, the trace context
and the log lines.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

import pyarrow.flight as flight

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import ROOT, TARGET, flight_query, free_port, sh, wait_healthy  # noqa: E402

SQL = "SELECT order_id, region, customer_email FROM lake.sales.orders WHERE order_id < 40"

ON = '\n[log]\nformat = "json"\nfilter = "info"\n[limits]\nrate_limit_per_minute = 0\nauth_failures_per_minute = 0\n'
OFF = ('\n[log]\nformat = "json"\nfilter = "warn"\n[limits]\nrate_limit_per_minute = 0\nauth_failures_per_minute = 0\n'
       '[audit]\nenabled = false\n[tracing]\nenabled = false\n')


def serve(sluice, base_config, extra, directory, name):
    config = os.path.join(directory, f"{name}.toml")
    with open(base_config) as f, open(config, "w") as out:
        out.write(f.read() + extra)
    flight_port, http_port = free_port(), free_port()
    env = dict(os.environ, SLUICE__SERVER__FLIGHT_ADDR=f"127.0.0.1:{flight_port}",
               SLUICE__SERVER__HTTP_ADDR=f"127.0.0.1:{http_port}")
    env.pop("RUST_LOG", None)
    proc = subprocess.Popen([sluice, "serve", "--config", config], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(directory, f"{name}.log"), "a"), start_new_session=True)
    wait_healthy(http_port, os.path.join(directory, f"{name}.log"))
    return proc, flight_port, http_port


def measure(flight_port, secret, queries):
    client = flight.FlightClient(f"grpc://127.0.0.1:{flight_port}")
    options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {secret}".encode())])
    for _ in range(20):  # warm-up
        flight_query(client, options, SQL)
    times = []
    for _ in range(queries):
        t = time.perf_counter()
        rows = flight_query(client, options, SQL)
        times.append((time.perf_counter() - t) * 1000)
    client.close()
    assert rows > 0
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dir", default="/tmp/sluice-audit-bench")
    args = ap.parse_args()

    sh("cargo", "build", "--release", "-p", "sluice", "--bin", "sluice", cwd=ROOT,
       env=dict(os.environ, CARGO_TARGET_DIR=TARGET))
    sluice = os.path.join(TARGET, "release", "sluice")
    sh(sluice, "demo", "--dir", args.dir, "--rows", str(args.rows), "--no-serve", stdout=subprocess.DEVNULL)
    base = os.path.join(args.dir, "sluice.toml")
    tokens = json.load(open(os.path.join(args.dir, "tokens.json")))
    admin = tokens["tokens"]["admin"]["secret"]

    secret = None
    on, off = [], []
    for _ in range(args.rounds):
        for name, extra, sink in (("on", ON, on), ("off", OFF, off)):
            proc, flight_port, http_port = serve(sluice, base, extra, args.dir, name)
            try:
                if secret is None:
                    body = json.dumps({
                        "name": "bench-audit", "attributes": {"region": "eu"}, "max_sensitivity": 3,
                        "grants": [{"table": "lake.sales.orders",
                                    "columns": ["order_id", "region", "customer_email"],
                                    "masks": {"customer_email": "hash"},
                                    "allow_rules": ["region = token.region"]}]}).encode()
                    req = urllib.request.Request(
                        f"http://127.0.0.1:{http_port}/v1/tokens", data=body, method="POST",
                        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
                    secret = json.load(urllib.request.urlopen(req))["secret"]
                sink.extend(measure(flight_port, secret, args.queries))
            finally:
                os.killpg(proc.pid, signal.SIGINT)
                proc.wait(timeout=30)

    def summary(ms):
        ms = sorted(ms)
        return {"median_ms": round(statistics.median(ms), 3), "p90_ms": round(ms[int(len(ms) * 0.9)], 3),
                "mean_ms": round(statistics.fmean(ms), 3)}

    a, b = summary(on), summary(off)
    print(json.dumps({
        "statement": SQL, "queries_per_config": len(on), "rounds": args.rounds,
        "audit_metrics_logs_on": a, "off": b,
        "ratio_median": round(a["median_ms"] / b["median_ms"], 3),
        "ratio_mean": round(a["mean_ms"] / b["mean_ms"], 3),
    }, indent=2))


if __name__ == "__main__":
    main()
