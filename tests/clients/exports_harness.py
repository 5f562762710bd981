"""Governed Parquet exports (``POST /v1/exports``): the gateway's
``[exports]`` config, the export tokens, an HTTP client of the jobs API,
destinations (moto S3 or the local export root) and the checks every
succeeded export must pass.

``ExportEnv`` bundles one started sluice server with ``[exports]``, its
export root, the direct S3 client (moto, not the proxy), the TCP proxy the
gateway's S3 traffic goes through, and lazily created tokens. The session
fixtures in conftest.py build it (``export_env``, ``export_mem_env``).

Buckets: ``exports`` for the ordinary tests (tokens allowed ``acme``),
``faults`` for the fault-injection tests (checked whole: nothing may be left
in it after a failed or cancelled job, wherever the gateway staged its data).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import re
import secrets
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import requests

from harness import SluiceServer, Tokens, _toml_str, adbc_query
from s3_harness import ACCESS_KEY, REGION, S3, SECRET_KEY
from tokens import CUSTOMERS, EU_ANALYST, ORACLE_TOKENS, ORDERS, token_body

BUCKET = "exports"
FAULT_BUCKET = "faults"
ACME_S3 = f"s3://{BUCKET}/acme"
ACME_FILE = "file:///acme"
#: ``[exports] memory_limit`` of the memory-test server (``export_mem_env``):
#: the smallest the gateway accepts.
MEM_LIMIT = 32 * 1024 * 1024
MEM_LIMIT_TOML = "32MiB"
#: Jobs of small exports finish well within this (debug build, 2 cores).
JOB_TIMEOUT_S = 180.0
FINISHED = ("succeeded", "failed", "cancelled")
LIVE = ("queued", "running")
#: The spec's defaults that the tests rely on.
DEFAULT_COMPRESSION = "zstd"
DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024
MIN_MAX_FILE_BYTES = 64 * 1024
#: pyarrow's name of the Parquet codec of each ``compression`` value.
PARQUET_CODECS = {
    "zstd": {"ZSTD"},
    "snappy": {"SNAPPY"},
    "gzip": {"GZIP"},
    "lz4": {"LZ4", "LZ4_RAW"},
    "none": {"UNCOMPRESSED"},
}
PROGRESS_KEYS = {"rows", "bytes", "files", "elapsed_ms", "rows_per_second", "bytes_per_second"}
JOB_KEYS = {
    "id", "token_id", "state", "sql", "destination", "compression", "max_file_bytes", "created_at",
    "started_at", "finished_at", "rows", "bytes", "files", "truncated", "row_limit", "progress", "error",
    "cancel_requested", "manifest", "summary",
}
MANIFEST_KEYS = {
    "version", "job_id", "token_id", "created_at", "finished_at", "statement", "statement_fingerprint",
    "policy_fingerprint", "rows", "bytes", "truncated", "row_limit", "compression", "schema", "files",
    "omitted_columns",
}
MANIFEST = "_manifest.json"


def export_setting(env: "ExportEnv", name: str):
    """A value of the server's ``[exports]`` section, as configured."""
    import tomllib

    return tomllib.loads(env.server.extra_config)["exports"][name]


def exports_config(
    root: Path,
    s3_endpoint: str,
    *,
    memory_limit: str = "32MiB",
    retry_timeout: str = "2s",
    cleanup_interval: str = "1s",
    concurrency: int = 2,
    max_queued: int = 100,
    max_jobs_per_token: int = 4,
) -> str:
    """The ``[exports]`` and ``[exports.s3]`` sections (``extra_config`` of
    SluiceServer); ``s3_endpoint`` is the proxy in front of moto."""
    return "\n".join([
        "[exports]",
        "enabled = true",
        f"root = {_toml_str(str(root))}",
        f"concurrency = {concurrency}",
        f"max_queued = {max_queued}",
        f"max_jobs_per_token = {max_jobs_per_token}",
        f"memory_limit = {_toml_str(memory_limit)}",
        f"retry_timeout = {_toml_str(retry_timeout)}",
        f"cleanup_interval = {_toml_str(cleanup_interval)}",
        "",
        "[exports.s3]",
        f"endpoint = {_toml_str(s3_endpoint)}",
        f"region = {_toml_str(REGION)}",
        f"access_key_id = {_toml_str(ACCESS_KEY)}",
        f"secret_access_key = {_toml_str(SECRET_KEY)}",
        "path_style = true",
    ])


# --- tokens -------------------------------------------------------------------------------

def _with_destinations(body: dict, name: str, destinations: list[str], **fields) -> dict:
    out = json.loads(json.dumps(body))
    out["name"] = name
    out["export_destinations"] = destinations
    out.update(fields)
    return out


ALL_SALES = [{"table": "lake.sales.*", "columns": "*"}]
#: orders and customers, only the columns the wide cross join uses.
WIDE_GRANTS = [
    {"table": ORDERS, "columns": ["order_id", "customer_email", "amount"]},
    {"table": CUSTOMERS, "columns": ["customer_id", "name"]},
]
ACME = [ACME_S3, ACME_FILE]

EXPORT_TOKENS: dict[str, dict] = {
    # Sees every visible row and column of sales.* (attachments and vectors too).
    "reader": token_body("exp-reader", ALL_SALES, max_sensitivity=3, row_limit=100_000,
                         allow_attachments=True, can_export_vectors=True, export_destinations=ACME),
    # A second token with the same rights: jobs of one are not the other's.
    "other": token_body("exp-other", ALL_SALES, max_sensitivity=3, row_limit=100_000,
                        export_destinations=ACME),
    "limited": token_body("exp-limited", ALL_SALES, max_sensitivity=3, row_limit=100,
                          export_destinations=ACME),
    "no_exports": token_body("exp-none", ALL_SALES, max_sensitivity=3, row_limit=100_000),
    "s3_only": token_body("exp-s3-only", ALL_SALES, max_sensitivity=3, row_limit=100_000,
                          export_destinations=[ACME_S3]),
    "exact": token_body("exp-exact", ALL_SALES, max_sensitivity=3, row_limit=100_000,
                        export_destinations=[f"s3://{BUCKET}/solo", "file:///solo"]),
    # Granted the attachment and vector columns of orders by name, flags off.
    "hidden_cols": token_body("exp-hidden-cols", [{"table": ORDERS, "columns": [
                                  "order_id", "region", "customer_id", "customer_email", "amount",
                                  "embedding", "attachment", "created_at"]}], max_sensitivity=3,
                              row_limit=100_000, allow_attachments=False, can_export_vectors=False,
                              export_destinations=ACME),
    # The same through a "*" grant: the manifest names no hidden column.
    "hidden_star": token_body("exp-hidden-star", [{"table": ORDERS, "columns": "*"}], max_sensitivity=3,
                              row_limit=100_000, allow_attachments=False, can_export_vectors=False,
                              export_destinations=ACME),
    # Big exports (fault injection, memory, queue): effectively no row limit.
    "big": token_body("exp-big", WIDE_GRANTS, max_sensitivity=3, row_limit=1_000_000_000,
                      export_destinations=[f"s3://{FAULT_BUCKET}/big", "file:///big", "file:///mem"]),
    "queue": token_body("exp-queue", WIDE_GRANTS, max_sensitivity=3, row_limit=1_000_000_000,
                        export_destinations=["file:///queue"]),
    # The policy tokens of tokens.py, exporting; row limits above the data.
    "eu_analyst": _with_destinations(EU_ANALYST, "exp-eu-analyst", ACME, row_limit=100_000),
    **{key: _with_destinations(body, f"exp-{body['name']}", ACME) for key, body in ORACLE_TOKENS.items()},
}


# --- SQL ---------------------------------------------------------------------------------

def wide_cross_join_sql(repeat: int, copies: int = 1, limit: int | None = None) -> str:
    """orders x customers (every pair of visible rows; ``copies`` times) with
    a unique, dictionary-proof text column of about ``40 * repeat`` bytes
    per row: with compression "none", the ~0.6M pairs make about
    ``25 * repeat`` MiB of Parquet per copy (measured)."""
    payload = (
        "concat(CAST(o.order_id AS VARCHAR), '/', CAST(c.customer_id AS VARCHAR), '/', "
        "coalesce(o.customer_email, ''), '/', c.name)"
    )
    source = f"{ORDERS} o CROSS JOIN {CUSTOMERS} c"
    if copies > 1:
        values = ", ".join(f"({i})" for i in range(copies))
        payload = f"concat(CAST(v.k AS VARCHAR), '#', {payload})"
        source += f" CROSS JOIN (VALUES {values}) AS v(k)"
    sql = f"SELECT o.order_id, c.customer_id, o.amount, repeat({payload}, {repeat}) AS payload FROM {source}"
    return sql if limit is None else f"{sql} LIMIT {limit}"


def wide_count_sql(copies: int = 1) -> str:
    """The number of rows of ``wide_cross_join_sql(_, copies)``."""
    return f"SELECT count(*) * {copies} AS n FROM {ORDERS} o CROSS JOIN {CUSTOMERS} c"


def unique(name: str) -> str:
    """A destination segment no earlier run or test used."""
    return f"{name}-{secrets.token_hex(4)}"


def sha256_fingerprint(sql: str) -> str:
    return "sha256:" + hashlib.sha256(sql.encode()).hexdigest()


# --- HTTP API ------------------------------------------------------------------------------

class ExportApi:
    """``/v1/exports`` as one caller (``secret`` None: no Authorization)."""

    def __init__(self, base: str, secret: str | None, *, authorization: str | None = None):
        self.base = base
        if authorization is not None:
            self.headers = {"Authorization": authorization}
        elif secret is not None:
            self.headers = {"Authorization": f"Bearer {secret}"}
        else:
            self.headers = {}

    def post(self, sql: str | None = None, destination: str | None = None, *, body: dict | None = None,
             **fields) -> requests.Response:
        if body is None:
            body = {"sql": sql, "destination": destination, **fields}
        return requests.post(f"{self.base}/v1/exports", json=body, headers=self.headers, timeout=60,
                             allow_redirects=False)

    def get(self, job_id: str) -> requests.Response:
        return requests.get(f"{self.base}/v1/exports/{job_id}", headers=self.headers, timeout=30)

    def delete(self, job_id: str) -> requests.Response:
        return requests.delete(f"{self.base}/v1/exports/{job_id}", headers=self.headers, timeout=30)

    def list(self, all_jobs: bool = False) -> requests.Response:
        params = {"all": "true"} if all_jobs else None
        return requests.get(f"{self.base}/v1/exports", params=params, headers=self.headers, timeout=30)

    # -- checked helpers ---------------------------------------------------------------
    def submit(self, sql: str, destination: str, **fields) -> dict:
        """POST, expecting 202 with a job JSON and its Location."""
        r = self.post(sql, destination, **fields)
        assert r.status_code == 202, f"POST /v1/exports {destination} -> {r.status_code}: {r.text}"
        job = r.json()
        check_job_shape(job)
        assert r.headers.get("Location", "").endswith(f"/v1/exports/{job['id']}"), dict(r.headers)
        assert job["state"] in LIVE + FINISHED, job
        assert job["sql"] == sql and job["destination"] == destination, job
        return job

    def job(self, job_id: str) -> dict:
        r = self.get(job_id)
        assert r.status_code == 200, f"GET /v1/exports/{job_id} -> {r.status_code}: {r.text}"
        return r.json()

    def jobs(self, all_jobs: bool = False) -> list[dict]:
        r = self.list(all_jobs)
        assert r.status_code == 200, f"GET /v1/exports -> {r.status_code}: {r.text}"
        return r.json()["jobs"]

    def wait(self, job_id: str, *, timeout_s: float = JOB_TIMEOUT_S, states=FINISHED) -> dict:
        """Polls the job until its state is one of ``states``."""
        deadline = time.monotonic() + timeout_s
        job = self.job(job_id)
        while job["state"] not in states:
            if time.monotonic() > deadline:
                raise AssertionError(f"export job {job_id} not {'/'.join(states)} after {timeout_s:.0f}s: {job}")
            time.sleep(0.1)
            job = self.job(job_id)
        return job

    def run(self, sql: str, destination: str, *, timeout_s: float = JOB_TIMEOUT_S, **fields) -> dict:
        """Submit and wait; the job must succeed."""
        job = self.wait(self.submit(sql, destination, **fields)["id"], timeout_s=timeout_s)
        assert job["state"] == "succeeded", f"export job did not succeed: {job}"
        return job


def check_job_shape(job: dict) -> None:
    missing = JOB_KEYS - job.keys()
    assert not missing, f"job JSON lacks {sorted(missing)}: {job}"
    assert isinstance(job["progress"], dict) and not PROGRESS_KEYS - job["progress"].keys(), job
    assert isinstance(job["truncated"], bool) and isinstance(job["cancel_requested"], bool), job


def error_of(r: requests.Response) -> str:
    """The ``error`` of a JSON error answer (asserting that shape)."""
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"{r.status_code} answer is not JSON: {r.text!r}") from None
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    return body["error"]


# --- destinations ----------------------------------------------------------------------------

class S3Dest:
    """``s3://bucket/prefix`` read through the direct (moto) client."""

    def __init__(self, s3: S3, bucket: str, prefix: str):
        self.s3, self.bucket, self.prefix = s3, bucket, prefix.strip("/")

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def files(self) -> dict[str, int]:
        """name below the destination -> size."""
        return self.s3.objects_below(self.bucket, self.prefix)

    def read(self, name: str) -> bytes:
        return self.s3.get(self.bucket, f"{self.prefix}/{name}")


class LocalDest:
    """``file:///rel`` = ``<root>/rel``."""

    def __init__(self, root: Path, rel: str):
        self.root, self.rel = root, rel.strip("/")

    @property
    def uri(self) -> str:
        return f"file:///{self.rel}"

    @property
    def path(self) -> Path:
        return self.root / self.rel

    def files(self) -> dict[str, int]:
        return tree_files(self.path)

    def read(self, name: str) -> bytes:
        return (self.path / name).read_bytes()


def tree_files(path: Path) -> dict[str, int]:
    """Regular files below ``path`` (relative POSIX path -> size); {} if absent."""
    if not path.exists():
        return {}
    return {p.relative_to(path).as_posix(): p.stat().st_size for p in path.rglob("*") if p.is_file()}


# --- the environment -------------------------------------------------------------------------

@dataclasses.dataclass
class ExportEnv:
    server: SluiceServer
    root: Path
    s3: S3
    proxy: object  # tcp_proxy.TcpProxy
    tokens: Tokens

    def __post_init__(self) -> None:
        self._conns: dict[str, object] = {}

    def api(self, key: str) -> ExportApi:
        return ExportApi(self.server.http_base, self.tokens[key]["secret"])

    def admin(self) -> ExportApi:
        return ExportApi(self.server.http_base, self.server.admin_secret)

    def anon(self, authorization: str | None = None) -> ExportApi:
        return ExportApi(self.server.http_base, None, authorization=authorization)

    def query(self, key: str, sql: str) -> pa.Table:
        """``sql`` over Flight SQL (ADBC) as token ``key``."""
        if key not in self._conns:
            self._conns[key] = self.server.adbc_connect(self.tokens[key]["secret"])
        return adbc_query(self._conns[key], sql)

    def dest(self, uri: str):
        if uri.startswith("s3://"):
            bucket, _, prefix = uri[len("s3://"):].partition("/")
            return S3Dest(self.s3, bucket, prefix)
        if uri.startswith("file:///"):
            return LocalDest(self.root, uri[len("file:///"):])
        raise ValueError(uri)

    def live_jobs(self) -> list[dict]:
        """Queued or running jobs of every token (admin ``?all=true``; []
        if that listing does not answer, which its own test reports)."""
        r = self.admin().list(all_jobs=True)
        if r.status_code != 200:
            return []
        return [j for j in r.json().get("jobs", []) if j.get("state") in LIVE]

    def close(self) -> None:
        for conn in self._conns.values():
            with contextlib.suppress(Exception):
                conn.close()
        self._conns.clear()


# --- what a succeeded export must be ------------------------------------------------------------

@dataclasses.dataclass
class Export:
    job: dict
    manifest: dict
    #: every part file concatenated, in manifest order
    table: pa.Table
    #: per part: (manifest entry, pyarrow ParquetFile metadata)
    parts: list[tuple[dict, pq.FileMetaData]]


def _rfc3339(value, what: str) -> dt.datetime:
    assert isinstance(value, str), f"{what} is not an RFC 3339 string: {value!r}"
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AssertionError(f"{what} is not RFC 3339: {value!r}") from None


def check_export(
    env: ExportEnv,
    job: dict,
    *,
    key: str,
    sql: str,
    compression: str = DEFAULT_COMPRESSION,
    max_file_bytes: int | None = None,
    truncated: bool = False,
    read_rows: bool = True,
) -> Export:
    """Every promise of a succeeded job about its destination: only part
    files and the manifest, the manifest's fields against the job, the
    token, the SQL and the files; every part readable with its codec.
    ``read_rows=False`` reads only the Parquet footers (big exports)."""
    token, body = env.tokens[key], env.tokens.bodies[key]
    dest = env.dest(job["destination"])
    assert job["state"] == "succeeded", job
    check_job_shape(job)
    assert job["error"] is None, job
    assert job["manifest"] == f"{job['destination']}/{MANIFEST}", job
    assert job["token_id"] == token["id"] and job["sql"] == sql, job
    assert job["compression"] == compression, job
    assert job["max_file_bytes"] == (max_file_bytes or DEFAULT_MAX_FILE_BYTES), job
    assert job["truncated"] is truncated and job["row_limit"] == body["row_limit"], job
    created, started, finished = (_rfc3339(job[k], f"job {k}") for k in ("created_at", "started_at", "finished_at"))
    assert created <= started <= finished, job

    names = dest.files()
    assert MANIFEST in names, f"no {MANIFEST} at {dest.uri}: {sorted(names)}"
    m = json.loads(dest.read(MANIFEST))
    # a single job's answer carries the manifest itself (lists do not)
    assert job["summary"] == m, f"job summary differs from {dest.uri}/{MANIFEST}: {job['summary']} vs {m}"
    missing = MANIFEST_KEYS - m.keys()
    assert not missing, f"manifest lacks {sorted(missing)}: {m}"
    assert m["version"] == 1 and m["job_id"] == job["id"] and m["token_id"] == token["id"], m
    assert m["statement"] == sql and m["statement_fingerprint"] == sha256_fingerprint(sql), m
    assert re.fullmatch(r"hmac-sha256:[0-9a-f]{64}", m["policy_fingerprint"]), m["policy_fingerprint"]
    assert m["compression"] == compression and m["truncated"] is truncated, m
    assert m["row_limit"] == body["row_limit"], m
    assert _rfc3339(m["created_at"], "manifest created_at") <= _rfc3339(m["finished_at"], "manifest finished_at")

    files = m["files"]
    assert files, f"an export has at least one part file: {m}"
    assert [f["path"] for f in files] == [f"part-{i:05d}.parquet" for i in range(len(files))], files
    assert set(names) == {f["path"] for f in files} | {MANIFEST}, (
        f"only the parts and the manifest belong at {dest.uri}: {sorted(names)} vs manifest {files}")
    assert m["rows"] == sum(f["rows"] for f in files) == job["rows"] == job["progress"]["rows"], (m, job)
    assert m["bytes"] == sum(f["bytes"] for f in files) == job["bytes"], (m, job)
    assert job["files"] == len(files), job

    schema_names = [c["name"] for c in m["schema"]]
    for c in m["schema"]:
        assert isinstance(c.get("type"), str) and c["type"] and isinstance(c.get("nullable"), bool), c
    for o in m["omitted_columns"]:
        assert set(o) >= {"table", "column", "reason"} and o["reason"] in ("attachment", "vector"), o

    tables, parts = [], []
    for f in files:
        data = dest.read(f["path"])
        assert len(data) == f["bytes"] == names[f["path"]], (f, names[f["path"]], len(data))
        if max_file_bytes is not None:
            assert len(data) <= max_file_bytes, f"{f['path']} has {len(data)} bytes > max_file_bytes {max_file_bytes}"
        pf = pq.ParquetFile(io.BytesIO(data))
        meta = pf.metadata
        assert meta.num_rows == f["rows"], (f, meta.num_rows)
        assert pf.schema_arrow.names == schema_names, (f["path"], pf.schema_arrow.names, schema_names)
        codecs = {meta.row_group(g).column(c).compression
                  for g in range(meta.num_row_groups) for c in range(meta.num_columns)}
        assert not codecs or codecs <= PARQUET_CODECS[compression], (f["path"], compression, codecs)
        parts.append((f, meta))
        tables.append(pf.read() if read_rows else pf.schema_arrow.empty_table())
    table = pa.concat_tables(tables) if read_rows else tables[0]
    if read_rows:
        assert table.num_rows == m["rows"], (table.num_rows, m["rows"])
    return Export(job=job, manifest=m, table=table, parts=parts)


def omitted(manifest: dict) -> set[tuple[str, str, str]]:
    return {(o["table"], o["column"], o["reason"]) for o in manifest["omitted_columns"]}


# --- S3 activity and local snapshots -------------------------------------------------------

def wait_for_s3_activity(api: ExportApi, job_id: str, s3: S3, bucket: str, before: dict, *,
                         min_parts: int = 0, timeout_s: float = 120.0) -> dict:
    """Polls moto until ``bucket`` differs from ``before`` (``S3.state``): the
    job opened a multipart upload or wrote an object, wherever it stages
    them; with ``min_parts``, until an open upload has that many parts.
    Returns ``{"objects": ..., "uploads": {key: parts}}``; fails if the job
    finishes first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = s3.state(bucket)
        if state != before:
            uploads = {u["Key"]: u["Parts"] or 0 for u in s3.multipart_uploads(bucket)}
            if min_parts == 0 or any(n >= min_parts for n in uploads.values()):
                return {"objects": state["objects"], "uploads": uploads}
        job = api.job(job_id)
        assert job["state"] in LIVE, f"the job finished before it was caught writing to s3://{bucket}: {job}"
        time.sleep(0.05)
    raise AssertionError(f"no upload to s3://{bucket} within {timeout_s:.0f}s: {api.job(job_id)}")


def wait_running_with_output(api: ExportApi, job_id: str, timeout_s: float = 120.0) -> dict:
    """Polls until the job is running and reports written rows or bytes;
    fails if it finishes first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = api.job(job_id)
        assert job["state"] in LIVE, f"the job finished before it could be interrupted: {job}"
        if job["state"] == "running" and (job["progress"]["rows"] > 0 or job["progress"]["bytes"] > 0):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job not running with output within {timeout_s:.0f}s: {api.job(job_id)}")


# --- process memory ------------------------------------------------------------------------

def proc_status_bytes(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (VmHWM, VmRSS) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            value, unit = line.split(":", 1)[1].split()
            assert unit == "kB", line
            return int(value) * 1024
    raise AssertionError(f"/proc/{pid}/status has no {field}")


def reset_peak_rss(pid: int) -> bool:
    """Resets VmHWM to the current RSS (``echo 5 > /proc/<pid>/clear_refs``,
    Linux >= 4.0); False where that is not permitted."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# --- CLI ---------------------------------------------------------------------------------

CLI_SUCCESS = re.compile(
    r"export (?P<id>\S+) succeeded: (?P<rows>\d+) rows, (?P<bytes>\d+) bytes, (?P<files>\d+) files -> (?P<dest>\S+)"
)


def run_cli(binary: Path, args: list[str], *, env_token: str | None = None,
            timeout_s: float = 300.0) -> subprocess.CompletedProcess:
    """``sluice export ARGS`` (stdin closed); SLUICE_TOKEN only if given."""
    env = {k: v for k, v in os.environ.items() if k != "SLUICE_TOKEN"}
    env["NO_COLOR"] = "1"
    if env_token is not None:
        env["SLUICE_TOKEN"] = env_token
    return subprocess.run([str(binary), "export", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout_s, env=env)


def describe(res: subprocess.CompletedProcess) -> str:
    return f"exit {res.returncode}\nstdout: {res.stdout[-2000:]}\nstderr: {res.stderr[-2000:]}"
