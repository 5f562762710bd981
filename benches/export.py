#!/usr/bin/env python3
"""Export throughput of sluice: an export job to local Parquet against
DataFusion's own write_parquet of the same statement. Not part of CI.

Usage (from the repository root, after ./scripts/test.sh created .venv):

    .venv/bin/python benches/export.py [--rows 3000000] [--iterations 3] [--dir /tmp/sluice-export-bench]

It builds the release binary and examples/raw_export.rs, a demo warehouse
with --rows orders, starts `sluice serve` with an [exports] section, and
measures in the same run, for the same statement:

  (a) DataFusion's own DataFrame::write_parquet to local disk, no policy
      (examples/raw_export.rs);
  (b) a sluice export job to file:// (local disk) with a full-access token:
      wall time from POST /v1/exports to "succeeded" (planning, queueing,
      policy, Parquet encoding, atomic commit and manifest included);
  (c) the same with a policy token (row rule, deny rule, hashed e-mail):
      reported, not compared (it writes fewer rows).

Both writers use zstd level 1. It prints rows/s and MB/s (of Parquet
written) and the ratio (b)/(a) of rows/s, whose target is >= 0.7.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import tomllib
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import ROOT, TARGET, free_port, sh, wait_healthy  # noqa: E402

SQL = "SELECT * FROM lake.sales.orders"


def api(port, secret, method, path, body=None):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def sluice_export(port, secret, dest):
    t = time.perf_counter()
    job = api(port, secret, "POST", "/v1/exports", {"sql": SQL, "destination": dest, "compression": "zstd"})
    while job["state"] in ("queued", "running"):
        time.sleep(0.02)
        job = api(port, secret, "GET", f"/v1/exports/{job['id']}")
    elapsed = time.perf_counter() - t
    if job["state"] != "succeeded":
        raise SystemExit(f"export {job['id']} {job['state']}: {job['error']}")
    return elapsed, job["rows"], job["bytes"], job["files"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=3_000_000)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/sluice-export-bench")
    args = ap.parse_args()

    sh("cargo", "build", "--release", "-p", "sluice", "--bin", "sluice", "--example", "raw_export", cwd=ROOT,
       env=dict(os.environ, CARGO_TARGET_DIR=TARGET))
    sluice = os.path.join(TARGET, "release", "sluice")
    raw = os.path.join(TARGET, "release", "examples", "raw_export")

    flight_port, http_port = free_port(), free_port()
    env = dict(os.environ, SLUICE__SERVER__FLIGHT_ADDR=f"127.0.0.1:{flight_port}",
               SLUICE__SERVER__HTTP_ADDR=f"127.0.0.1:{http_port}")
    sh(sluice, "demo", "--dir", args.dir, "--rows", str(args.rows), "--no-serve", env=env, stdout=subprocess.DEVNULL)
    config = os.path.join(args.dir, "sluice.toml")
    root = os.path.join(args.dir, "exports")
    shutil.rmtree(root, ignore_errors=True)
    with open(config, "a") as f:
        f.write(f'\n[exports]\nroot = "{root}"\n')
    tokens = json.load(open(os.path.join(args.dir, "tokens.json")))
    admin = tokens["tokens"]["admin"]["secret"]
    server = subprocess.Popen([sluice, "serve", "--config", config], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(os.path.join(args.dir, "serve.log"), "w"), start_new_session=True)
    try:
        wait_healthy(http_port, os.path.join(args.dir, "serve.log"))
        full = api(http_port, admin, "POST", "/v1/tokens", {
            "name": "bench-full", "max_sensitivity": 1_000_000, "row_limit": 1_000_000_000,
            "allow_attachments": True, "can_export_vectors": True,
            "export_destinations": ["file:///bench"], "grants": [{"table": "*"}]})["secret"]
        policy = api(http_port, admin, "POST", "/v1/tokens", {
            "name": "bench-policy", "attributes": {"region": "eu"}, "max_sensitivity": 3,
            "row_limit": 1_000_000_000, "export_destinations": ["file:///bench"],
            "grants": [{"table": "lake.sales.orders", "masks": {"customer_email": "hash"},
                        "allow_rules": ["region = token.region"], "deny_rules": ["amount > 100000"]}]})["secret"]

        lake = tomllib.load(open(config, "rb"))["catalogs"]["lake"]
        raw_runs, full_runs, policy_runs = [], [], []
        for i in range(args.iterations + 1):  # the first round warms caches
            out = os.path.join(args.dir, "raw-out", str(i)) + "/"
            shutil.rmtree(out, ignore_errors=True)
            r = json.loads(subprocess.run([raw, lake["uri"], lake["warehouse"], "lake", out, "zstd(1)", SQL],
                                          check=True, capture_output=True, text=True).stdout)
            f = sluice_export(http_port, full, f"file:///bench/full-{i}")
            p = sluice_export(http_port, policy, f"file:///bench/policy-{i}")
            if i:
                raw_runs.append((r["ms"] / 1000, r["rows"], r["bytes"]))
                full_runs.append(f)
                policy_runs.append(p)

        def summary(runs):
            secs = statistics.median(r[0] for r in runs)
            rows, size = runs[0][1], runs[0][2]
            return {"seconds": round(secs, 3), "rows": rows, "bytes": size,
                    "rows_per_s": round(rows / secs), "mb_per_s": round(size / secs / 1e6, 1)}

        a, b, c = summary(raw_runs), summary(full_runs), summary(policy_runs)
        print(json.dumps({
            "rows": args.rows, "iterations": args.iterations, "statement": SQL,
            "datafusion_write_parquet": a, "sluice_export_full_token": b, "sluice_export_policy_token": c,
            "ratio_rows_per_s": round(b["rows_per_s"] / a["rows_per_s"], 2),
        }, indent=2))
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
