#!/usr/bin/env python3
"""Engine speed through the gateway, against peers measured in the same
run. Not part of CI.

Usage (from the repository root, after ./scripts/test.sh created .venv):

    .venv/bin/python benches/engine.py [--rows 10000000] [--files 8] [--iterations 5] [--dir /tmp/sluice-engine]

It builds the release binary and two baselines (examples/hand_written.rs:
in-process DataFusion running a statement with the policy written by hand;
examples/plain_flight_sql.rs: a minimal ungoverned Flight SQL server over
DataFusion), writes an Iceberg lake with pyiceberg (``sales.orders``:
--rows rows in --files appends; ``sales.points``: 5,000 rows;
``sales.wide`` and ``sales.wide_raw``: --wide-rows rows of 16 numeric
columns, zstd and uncompressed), serves it with
sluice and measures, each against its peers in this run:

  aggregate   policy token (row rule, deny rule, hashed e-mail) over Flight
              SQL vs the hand-written policy in DataFusion over the same
              Parquet files (target <= 1.10x), DuckDB beside it;
  stream_1M   1M rows with the hashed column, Flight SQL -> pyarrow, vs the
              hand-written query in DataFusion (target <= 1.25x) and DuckDB
              (sluice must be faster; DuckDB hashes with its sha256);
  wide        one unmasked stream of the wide table, bytes/s against
              loopback TCP bandwidth (iperf3 when installed, else a Python
              socket pair; target >= 70%) and against the plain Flight SQL
              server streaming the same files: ``sales.wide_raw`` is
              written uncompressed (the wire bounds it: the target applies
              to it), ``sales.wide`` with pyiceberg's default zstd
              (decoding bounds it; reported beside);
              Arrow's reference (C++) Flight server streaming the same
              table from memory (benches/flight_reference.py) shows what
              a Flight stream to this client reaches here at all;
  floor       ADBC p50 of a point query on the 5,000-row table and of
              SELECT 1, against the plain Flight SQL server (target <= 1.5x).

Prints a JSON report and a table with each target and whether it is met.
Machines here are noisy: run it more than once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import ROOT, TARGET, encode_any, encode_string, flight_query, free_port, sh, timed, wait_healthy  # noqa: E402

MASK_KEY = "engine-bench-mask-key-0123456789"
CATALOG = "bench"
REGIONS = ["eu", "us", "apac", "latam"]
DENY_ABOVE = 9000.0
WIDE_COLUMNS = 16

AGG = f"SELECT region, sum(amount), count(*) FROM {CATALOG}.sales.orders GROUP BY region"
AGG_HAND = ("SELECT region, sum(amount), count(*) FROM orders "
            f"WHERE region = 'eu' AND (amount > {DENY_ABOVE}) IS FALSE GROUP BY region")
STREAM = f"SELECT order_id, region, customer_email, amount FROM {CATALOG}.sales.orders LIMIT 1000000"
STREAM_HAND = ("SELECT order_id, region, {hash}(customer_email) AS customer_email, amount FROM orders "
               f"WHERE region = 'eu' AND (amount > {DENY_ABOVE}) IS FALSE LIMIT 1000000")
POINT = f"SELECT * FROM {CATALOG}.sales.points WHERE id = 1234"
POINT_PLAIN = "SELECT * FROM points WHERE id = 1234"


def orders_chunk(start: int, count: int) -> pa.Table:
    ids = pa.array(range(start, start + count), pa.int64())
    region = pc.take(pa.array(REGIONS), pc.cast(pc.bit_wise_and(ids, 3), pa.int64()))
    customer = pc.divide(ids, 7)
    email = pc.binary_join_element_wise("customer", pc.cast(customer, pa.string()), "@example.com", "")
    amount = pc.divide(pc.cast(pc.bit_wise_and(pc.multiply(ids, 7919), 16383), pa.float64()), 1.6)
    status = pc.take(pa.array(["open", "shipped", "returned"]), pc.cast(pc.bit_wise_and(ids, 1), pa.int64()))
    return pa.table({"order_id": ids, "region": region, "customer_id": customer, "customer_email": email,
                     "amount": amount, "status": status})


def build_lake(directory: str, rows: int, files: int, wide_rows: int) -> dict:
    """The pyiceberg lake (reused when it already has these sizes)."""
    from pyiceberg.catalog.sql import SqlCatalog

    lake = os.path.join(directory, "lake")
    marker = os.path.join(lake, "ready.json")
    sizes = {"rows": rows, "files": files, "wide_rows": wide_rows, "tables": ["orders", "points", "wide", "wide_raw"]}
    warehouse = os.path.join(lake, "warehouse")
    info = {"uri": f"sqlite:///{lake}/catalog.db", "warehouse": f"file://{warehouse}"}
    if os.path.exists(marker) and json.load(open(marker)) == sizes:
        return info
    shutil.rmtree(lake, ignore_errors=True)
    os.makedirs(warehouse)
    t = time.perf_counter()
    catalog = SqlCatalog(CATALOG, uri=info["uri"], warehouse=info["warehouse"])
    catalog.create_namespace("sales")
    per = -(-rows // files)
    orders = catalog.create_table("sales.orders", schema=orders_chunk(0, 1).schema)
    for start in range(0, rows, per):
        orders.append(orders_chunk(start, min(per, rows - start)))
    ids = pa.array(range(5000), pa.int64())
    points = pa.table({"id": ids, "name": pc.binary_join_element_wise("p", pc.cast(ids, pa.string()), ""),
                       "value": pc.divide(pc.cast(ids, pa.float64()), 3.0)})
    catalog.create_table("sales.points", schema=points.schema).append(points)
    wide_ids = pa.array(range(wide_rows), pa.int64())
    wide = pa.table({f"c{i}": (pc.multiply(wide_ids, i + 1) if i % 2 == 0 else
                               pc.divide(pc.cast(wide_ids, pa.float64()), i + 1)) for i in range(WIDE_COLUMNS)})
    catalog.create_table("sales.wide", schema=wide.schema).append(wide)
    # The same rows uncompressed: the wire, not zstd decoding, bounds its stream.
    catalog.create_table("sales.wide_raw", schema=wide.schema,
                         properties={"write.parquet.compression-codec": "uncompressed"}).append(wide)
    json.dump(sizes, open(marker, "w"))
    print(f"lake written in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    return info


def table_dir(info: dict, table: str) -> str:
    base = os.path.join(info["warehouse"].removeprefix("file://"), "sales", table, "data")
    if not os.path.isdir(base):  # pyiceberg's layout: <warehouse>/sales.db/<table>/data
        base = os.path.join(info["warehouse"].removeprefix("file://"), "sales.db", table, "data")
    files = [os.path.join(dp, f) for dp, _, fs in os.walk(base) for f in fs if f.endswith(".parquet")]
    assert files, f"no parquet files under {base}"
    return base + "/"


class Gateway:
    def __init__(self, sluice: str, directory: str, info: dict):
        self.dir = os.path.join(directory, "gateway")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.flight_port, self.http_port = free_port(), free_port()
        self.config = os.path.join(self.dir, "sluice.toml")
        open(self.config, "w").write(f"""[server]
flight_addr = "127.0.0.1:{self.flight_port}"
http_addr = "127.0.0.1:{self.http_port}"
data_dir = "{self.dir}"

[store]
url = "sqlite://{self.dir}/sluice.db"

[policy]
mask_key = "{MASK_KEY}"

[catalogs.{CATALOG}]
kind = "iceberg"
catalog = "sql"
uri = "{info['uri']}"
warehouse = "{info['warehouse']}"
""")
        self.admin = subprocess.run([sluice, "init", "--config", self.config], check=True, capture_output=True,
                                    text=True).stdout.strip()
        self.proc = subprocess.Popen([sluice, "serve", "--config", self.config], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "serve.log"), "w"), start_new_session=True)
        wait_healthy(self.http_port, os.path.join(self.dir, "serve.log"))

    def token(self, body: dict) -> str:
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/v1/tokens", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {self.admin}",
                                              "Content-Type": "application/json"}, method="POST")
        return json.load(urllib.request.urlopen(req))["secret"]

    def close(self):
        os.killpg(self.proc.pid, 15)
        self.proc.wait(timeout=30)


def policy_token_body() -> dict:
    return {"name": "engine-policy", "token_type": "public", "expires_at": "2099-01-01T00:00:00Z",
            "row_limit": 2_000_000, "attributes": {"region": "eu"},
            "grants": [{"table": f"{CATALOG}.sales.orders",
                        "columns": ["order_id", "region", "customer_id", "customer_email", "amount"],
                        "masks": {"customer_email": "hash"},
                        "allow_rules": ["region = token.region"],
                        "deny_rules": [f"amount > {DENY_ABOVE}"]}]}


def open_token_body() -> dict:
    return {"name": "engine-open", "token_type": "public", "expires_at": "2099-01-01T00:00:00Z",
            "row_limit": 100_000_000, "rate_limit": 1_000_000,  # the floor rounds run thousands of queries
            "grants": [{"table": f"{CATALOG}.sales.points", "columns": "*"},
                       {"table": f"{CATALOG}.sales.wide", "columns": "*"},
                       {"table": f"{CATALOG}.sales.wide_raw", "columns": "*"}]}


def loopback_bandwidth() -> tuple[float, str]:
    """Bytes/s of one loopback TCP stream: iperf3 when installed, else a
    Python socket pair sending 1 MiB buffers for about two seconds."""
    if shutil.which("iperf3"):
        port = free_port()
        server = subprocess.Popen(["iperf3", "-s", "-1", "-p", str(port)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        try:
            out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", "3", "-J"],
                                 check=True, capture_output=True, text=True).stdout
            return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 8, "iperf3"
        finally:
            server.wait(timeout=10)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received = [0]

    def sink():
        conn, _ = listener.accept()
        buf = bytearray(1 << 20)
        while (n := conn.recv_into(buf)):
            received[0] += n
        conn.close()

    thread = threading.Thread(target=sink)
    thread.start()
    payload = b"\0" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port)) as s:
        t = time.perf_counter()
        while time.perf_counter() - t < 2:
            s.sendall(payload)
    thread.join()
    return received[0] / (time.perf_counter() - t), "python socket pair"


def adbc_p50(uri: str, secret: str | None, sql: str, iterations: int) -> float:
    import adbc_driver_flightsql.dbapi as adbc

    kwargs = {}
    if secret:
        from adbc_driver_flightsql import DatabaseOptions
        kwargs["db_kwargs"] = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {secret}"}
    with adbc.connect(uri, **kwargs) as conn, conn.cursor() as cur:
        times = []
        for i in range(iterations + 20):
            t = time.perf_counter()
            cur.execute(sql)
            cur.fetch_arrow_table()
            if i >= 20:  # warm-up
                times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--wide-rows", type=int, default=2_000_000)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--floor-iterations", type=int, default=100)
    ap.add_argument("--floor-rounds", type=int, default=5)
    ap.add_argument("--dir", default="/tmp/sluice-engine")
    args = ap.parse_args()

    sh("cargo", "build", "--release", "-p", "sluice", "--bin", "sluice", "--example", "hand_written",
       "--example", "plain_flight_sql", cwd=ROOT, env=dict(os.environ, CARGO_TARGET_DIR=TARGET))
    sluice = os.path.join(TARGET, "release", "sluice")
    hand = os.path.join(TARGET, "release", "examples", "hand_written")
    plain = os.path.join(TARGET, "release", "examples", "plain_flight_sql")

    info = build_lake(args.dir, args.rows, args.files, args.wide_rows)
    dirs = {t: table_dir(info, t) for t in ("orders", "points", "wide", "wide_raw")}
    results: dict = {}

    gw = Gateway(sluice, args.dir, info)
    plain_port = free_port()
    plain_proc = subprocess.Popen([plain, f"127.0.0.1:{plain_port}", f"points={dirs['points']}",
                                   f"wide={dirs['wide']}", f"wide_raw={dirs['wide_raw']}"],
                                  stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        policy = gw.token(policy_token_body())
        opened = gw.token(open_token_body())
        client = flight.FlightClient(f"grpc://127.0.0.1:{gw.flight_port}")
        as_policy = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {policy}".encode())])
        as_open = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {opened}".encode())])

        def hand_run(sql):
            out = subprocess.run([hand, MASK_KEY, str(args.iterations + 1), sql, f"orders={dirs['orders']}"],
                                 check=True, capture_output=True, text=True)
            report = json.loads(out.stdout)
            return statistics.median(report["times_ms"][1:]), report["rows"]

        con = duckdb.connect()
        con.execute(f"CREATE VIEW orders AS SELECT * FROM read_parquet('{dirs['orders']}*.parquet')")

        for label, sql, hand_sql, target in (
            ("aggregate", AGG, AGG_HAND, 1.10),
            ("stream_1M", STREAM, STREAM_HAND, 1.25),
        ):
            df_ms, df_rows = hand_run(hand_sql.format(hash="sluice_mask_hash"))
            rows = flight_query(client, as_policy, sql)
            assert rows == df_rows, f"{label}: sluice returned {rows} rows, the hand-written query {df_rows}"
            sluice_ms = timed(lambda: flight_query(client, as_policy, sql), args.iterations)
            duck_sql = hand_sql.format(hash="sha256")
            duck_ms = timed(lambda: con.execute(duck_sql).to_arrow_table(), args.iterations)
            results[label] = {"sluice_flight_ms": round(sluice_ms, 1), "datafusion_hand_ms": round(df_ms, 1),
                              "duckdb_hand_ms": round(duck_ms, 1), "rows": rows,
                              "sluice_over_datafusion": round(sluice_ms / df_ms, 2), "target": target,
                              "sluice_over_duckdb": round(sluice_ms / duck_ms, 2)}

        plain = flight.FlightClient(f"grpc://127.0.0.1:{plain_port}")

        def stream_once(flight_client, options, sql):
            info_ = fp_info(flight_client, options, sql)
            return flight_client.do_get(info_.endpoints[0].ticket, options).read_all().nbytes

        loopback, how = loopback_bandwidth()
        reference = reference_flight(dirs["wide_raw"], loopback, args.iterations)
        for label, table in (("wide_raw", "wide_raw"), ("wide_zstd", "wide")):
            sluice_sql = f"SELECT * FROM {CATALOG}.sales.{table}"
            wide_bytes = stream_once(client, as_open, sluice_sql)
            wide_ms = timed(lambda: stream_once(client, as_open, sluice_sql), args.iterations)
            plain_sql = f"SELECT * FROM {table}"
            plain_ms = timed(lambda: stream_once(plain, flight.FlightCallOptions(), plain_sql), args.iterations)
            results[label] = {"bytes": wide_bytes, "sluice_ms": round(wide_ms, 1),
                              "sluice_bytes_per_s": round(wide_bytes / wide_ms * 1000),
                              "plain_flight_sql_ms": round(plain_ms, 1),
                              "sluice_over_plain": round(wide_ms / plain_ms, 2),
                              "loopback_bytes_per_s": round(loopback), "loopback_measured_with": how,
                              "share_of_loopback": round(wide_bytes / wide_ms * 1000 / loopback, 2),
                              "target": 0.70}
        results["wide_raw"]["reference_flight"] = reference

        # Alternating rounds: this machine's speed drifts within a run, and
        # both sides of a ratio must see the same drift.
        floor = {}
        for label, sql, plain_sql in (("point", POINT, POINT_PLAIN), ("select_1", "SELECT 1", "SELECT 1")):
            ours, theirs = [], []
            for _ in range(args.floor_rounds):
                ours.append(adbc_p50(f"grpc://127.0.0.1:{gw.flight_port}", opened, sql, args.floor_iterations))
                theirs.append(adbc_p50(f"grpc://127.0.0.1:{plain_port}", None, plain_sql, args.floor_iterations))
            s_, p_ = statistics.median(ours), statistics.median(theirs)
            floor[label] = {"sluice_p50_ms": round(s_, 2), "plain_flight_sql_p50_ms": round(p_, 2),
                            "ratio": round(s_ / p_, 2), "rounds": args.floor_rounds, "target": 1.5}
        results["floor"] = floor
    finally:
        gw.close()
        os.killpg(plain_proc.pid, 15)

    report = {"rows": args.rows, "files": args.files, "iterations": args.iterations, "results": results}
    print(json.dumps(report, indent=2))
    checks = [
        ("aggregate vs DataFusion by hand", results["aggregate"]["sluice_over_datafusion"], "<=", 1.10),
        ("stream_1M vs DataFusion by hand", results["stream_1M"]["sluice_over_datafusion"], "<=", 1.25),
        ("stream_1M vs DuckDB by hand", results["stream_1M"]["sluice_over_duckdb"], "<", 1.0),
        ("wide stream share of loopback", results["wide_raw"]["share_of_loopback"], ">=", 0.70),
        ("point query p50 vs plain Flight SQL", floor["point"]["ratio"], "<=", 1.5),
        ("SELECT 1 p50 vs plain Flight SQL", floor["select_1"]["ratio"], "<=", 1.5),
    ]
    print(f"\n{'check':40} {'value':>7} target  met")
    for name, value, op, target in checks:
        met = {"<=": value <= target, "<": value < target, ">=": value >= target}[op]
        print(f"{name:40} {value:7.2f} {op}{target:<5} {'yes' if met else 'NO'}")
    ref = results["wide_raw"]["reference_flight"]
    print(f"(reference C++ Flight server from memory, same client: {ref['1MiB']['share_of_loopback']:.2f} of "
          f"loopback in 1 MiB messages, {ref['8MiB']['share_of_loopback']:.2f} in 8 MiB ones)")


def reference_flight(directory: str, loopback: float, iterations: int) -> dict:
    """The share of loopback bandwidth Arrow's reference (C++) Flight server
    reaches streaming the same table from memory to the same client, with
    the messages sluice sends (8,192 rows, 1 MiB here) and with 8 MiB ones
    (benches/flight_reference.py)."""
    port = free_port()
    sizes = {"1MiB": 8192, "8MiB": 65536}
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "benches", "flight_reference.py"), str(port),
                             directory, *(str(n) for n in sizes.values())],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("the reference Flight server did not start")
        client = flight.FlightClient(f"grpc://127.0.0.1:{port}")
        out = {}
        for label, rows in sizes.items():
            ticket = flight.Ticket(str(rows).encode())
            nbytes = client.do_get(ticket).read_all().nbytes
            ms = timed(lambda: client.do_get(ticket).read_all(), iterations)
            out[label] = {"ms": round(ms, 1), "share_of_loopback": round(nbytes / ms * 1000 / loopback, 2)}
        return out
    finally:
        os.killpg(proc.pid, 15)
        proc.wait()


def fp_info(client, options, sql):
    """GetFlightInfo of a statement query."""
    command = encode_any("type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery",
                         encode_string(1, sql))
    return client.get_flight_info(flight.FlightDescriptor.for_command(command), options)


if __name__ == "__main__":
    main()
