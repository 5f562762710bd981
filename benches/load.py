#!/usr/bin/env python3
"""Load and soak test of sluice: many concurrent clients over ADBC Flight SQL
and the Trino protocol, a few abusive ones among them, for a given time.

Usage (from the repository root, after ./scripts/test.sh created .venv):

    .venv/bin/python benches/load.py [--clients 200] [--seconds 60] [--rows 1000000]
                                     [--abusive 4] [--binary PATH] [--dir /tmp/sluice-load]
                                     [--stream-rows 100000] [--query-timeout 10s]

It builds the release binary (unless --binary is given), writes a demo
warehouse with --rows orders (Iceberg, by sluice's demo), starts it with
memory and time limits (below), creates one policy token per four
well-behaved clients (row rule, deny rule, hashed e-mail), and runs:

  * well-behaved clients (three in four over ADBC Flight SQL, the rest over
    Trino's HTTP protocol), each looping over a mix of point queries (70%),
    aggregates (25%) and 100k-row streams (5%);
  * --abusive clients with their own token: half sort the whole table in
    a window (more memory than a query may hold), half count an endless
    range (until the time limit).

It prints, as JSON: the well-behaved clients' statements, errors (must be
0), throughput, p50/p99 latency per kind and protocol; what the abusive
clients got (refusals by kind); and the gateway's peak RSS (VmHWM) against
memory_limit. It exits non-zero if a well-behaved client saw an error or
the peak RSS went over memory_limit plus --overhead-mib.
"""

import argparse
import collections
import json
import os
import random
import statistics
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import ROOT, TARGET, gateway, sh  # noqa: E402

import adbc_driver_flightsql.dbapi as flightsql  # noqa: E402
import requests  # noqa: E402

MEMORY_LIMIT_MIB = 512
QUERY_MEMORY_LIMIT_MIB = 128
LIMITS_ENV = {
    "SLUICE__LIMITS__MEMORY_LIMIT": f"{MEMORY_LIMIT_MIB}MiB",
    "SLUICE__LIMITS__QUERY_MEMORY_LIMIT": f"{QUERY_MEMORY_LIMIT_MIB}MiB",
    "SLUICE__LIMITS__QUERY_TIMEOUT": "10s",
    "SLUICE__LIMITS__RATE_LIMIT_PER_MINUTE": "0",
    "SLUICE__LIMITS__QUEUE_TIMEOUT": "60s",
    "SLUICE__LIMITS__MAX_QUEUED_QUERIES": "1024",
}

ORDERS = "lake.sales.orders"
#: Rows of the stream statements (--stream-rows).
STREAM_ROWS = 100_000


def peak_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def create_token(http_port, admin, name, grants, **fields):
    body = {"name": name, "max_sensitivity": 3, "row_limit": 200_000, "grants": grants, **fields}
    req = urllib.request.Request(f"http://127.0.0.1:{http_port}/v1/tokens", data=json.dumps(body).encode(),
                                 method="POST",
                                 headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))["secret"]


def statement(kind, rows):
    if kind == "point":
        return f"SELECT order_id, region, customer_email, amount FROM {ORDERS} WHERE order_id = {random.randrange(rows)}"
    if kind == "aggregate":
        return f"SELECT region, count(*), sum(amount) FROM {ORDERS} GROUP BY region"
    return f"SELECT order_id, region, customer_email, amount FROM {ORDERS} LIMIT {STREAM_ROWS}"


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = collections.defaultdict(list)
        self.errors = collections.Counter()
        self.error_samples = []
        self.abusive = collections.Counter()

    def ok(self, key, ms):
        with self.lock:
            self.latencies[key].append(ms)

    def error(self, key, e):
        with self.lock:
            self.errors[key] += 1
            if len(self.error_samples) < 10:
                self.error_samples.append(f"{key}: {str(e)[:300]}")


def pick_kind():
    r = random.random()
    return "point" if r < 0.70 else ("aggregate" if r < 0.95 else "stream")


def connect(port, secret):
    return flightsql.connect(f"grpc://127.0.0.1:{port}",
                             db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {secret}"},
                             autocommit=True)


def flight_client(port, secret, rows, stop, results):
    with connect(port, secret) as conn:
        while not stop.is_set():
            kind = pick_kind()
            t = time.perf_counter()
            try:
                with conn.cursor() as cur:
                    cur.execute(statement(kind, rows))
                    cur.fetch_arrow_table()
                results.ok(("flight", kind), (time.perf_counter() - t) * 1000)
            except Exception as e:  # noqa: BLE001 - every failure is counted
                results.error(("flight", kind), e)


def trino_client(port, secret, rows, stop, results):
    session = requests.Session()
    headers = {"Authorization": f"Bearer {secret}", "X-Trino-User": "load"}
    while not stop.is_set():
        kind = pick_kind()
        t = time.perf_counter()
        try:
            doc = session.post(f"http://127.0.0.1:{port}/v1/statement", data=statement(kind, rows),
                               headers=headers, timeout=120).json()
            while doc.get("nextUri"):
                doc = session.get(doc["nextUri"], headers=headers, timeout=120).json()
            if doc.get("error"):
                raise RuntimeError(doc["error"].get("errorName", "") + ": " + doc["error"].get("message", ""))
            results.ok(("trino", kind), (time.perf_counter() - t) * 1000)
        except Exception as e:  # noqa: BLE001
            results.error(("trino", kind), e)


def abusive_client(port, secret, sql, stop, results):
    with connect(port, secret) as conn:
        while not stop.is_set():
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    cur.fetch_arrow_table()
                results.abusive["completed"] += 1
            except Exception as e:  # noqa: BLE001
                text = str(e)
                key = ("query_memory_limit" if "memory" in text else
                       "query_timeout" if "time limit" in text else
                       "too_many_queries" if "too many queries" in text else text[:80])
                results.abusive[key] += 1


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--abusive", type=int, default=4)
    ap.add_argument("--binary")
    ap.add_argument("--dir", default="/tmp/sluice-load")
    ap.add_argument("--overhead-mib", type=int, default=384)
    ap.add_argument("--stream-rows", type=int, default=100_000, help="rows of the stream statements")
    ap.add_argument("--query-timeout", default="10s", help="[limits] query_timeout of the gateway")
    args = ap.parse_args()
    global STREAM_ROWS
    STREAM_ROWS = args.stream_rows
    LIMITS_ENV["SLUICE__LIMITS__QUERY_TIMEOUT"] = args.query_timeout
    sluice = args.binary
    if not sluice:
        sh("cargo", "build", "--release", "-p", "sluice", "--bin", "sluice", cwd=ROOT,
           env=dict(os.environ, CARGO_TARGET_DIR=TARGET))
        sluice = os.path.join(TARGET, "release", "sluice")
    results = Results()
    with gateway(sluice, args.dir, args.rows, "load-probe", env_extra=LIMITS_ENV) as gw:
        policy = [{"table": ORDERS, "columns": ["order_id", "region", "customer_email", "amount"],
                   "masks": {"customer_email": "hash"}, "allow_rules": ["region = token.region"],
                   "deny_rules": ["amount > 100000"]}]
        secrets = [create_token(gw.http_port, gw.admin, f"load-{i}", policy, attributes={"region": "eu"})
                   for i in range((args.clients + 3) // 4)]
        abuser = create_token(gw.http_port, gw.admin, "load-abuser", [{"table": ORDERS}])
        stop = threading.Event()
        threads = []
        for i in range(args.clients):
            secret = secrets[i // 4]
            target = trino_client if i % 4 == 3 else flight_client
            port = gw.http_port if target is trino_client else gw.flight_port
            threads.append(threading.Thread(target=target, args=(port, secret, args.rows, stop, results), daemon=True))
        heavy = (f"SELECT count(DISTINCT a.customer_email || b.region) FROM {ORDERS} a "
                 f"CROSS JOIN (SELECT region FROM {ORDERS} LIMIT 50) b")
        endless = "SELECT count(*) FROM range(1000000000000)"
        for i in range(args.abusive):
            sql = heavy if i % 2 == 0 else endless
            threads.append(threading.Thread(target=abusive_client, args=(gw.flight_port, abuser, sql, stop, results),
                                            daemon=True))
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join(timeout=180)
        elapsed = time.perf_counter() - t0
        rss = peak_rss(gw.pid)
    by_kind = {}
    total = 0
    for (proto, kind), lat in sorted(results.latencies.items()):
        total += len(lat)
        by_kind[f"{proto}/{kind}"] = {"statements": len(lat), "p50_ms": round(statistics.median(lat), 1),
                                      "p99_ms": round(percentile(lat, 0.99), 1)}
    all_lat = [x for lat in results.latencies.values() for x in lat]
    report = {
        "clients": args.clients, "abusive_clients": args.abusive, "seconds": round(elapsed, 1), "rows": args.rows,
        "well_behaved": {"statements": total, "errors": sum(results.errors.values()),
                         "throughput_per_s": round(total / elapsed, 1),
                         "p50_ms": round(statistics.median(all_lat), 1) if all_lat else None,
                         "p99_ms": round(percentile(all_lat, 0.99), 1) if all_lat else None,
                         "by_kind": by_kind, "error_samples": results.error_samples},
        "abusive": dict(results.abusive),
        "peak_rss_mib": round(rss / (1 << 20)),
        "memory_limit_mib": MEMORY_LIMIT_MIB,
    }
    print(json.dumps(report, indent=2))
    failed = report["well_behaved"]["errors"] > 0 or rss > (MEMORY_LIMIT_MIB + args.overhead_mib) << 20
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
