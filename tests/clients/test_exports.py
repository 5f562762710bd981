"""Governed Parquet exports to object storage, with real clients: the jobs
API over HTTP (``requests``), the files read back with pyarrow (from moto
over boto3, or from the gateway's local export root), compared with the
same query over Flight SQL (ADBC) by the same token, and the ``sluice
export`` CLI as a subprocess.

The gateway (``export_env``) sends its S3 traffic through a TcpProxy in
front of moto (``retry_timeout`` 2s, ``cleanup_interval`` 1s), so the fault
tests pause or cut the object store mid-upload while reading moto's state
directly. Helpers, tokens and the checks every succeeded export must pass
(``check_export``) are in exports_harness.py.
"""

from __future__ import annotations

import collections
import contextlib
import json
import re
import secrets
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest

import lake_counts
from compare import diff_results, table_rows
from exports_harness import (
    ACME, ACME_FILE, ACME_S3, ALL_SALES, BUCKET, CLI_SUCCESS, FAULT_BUCKET, LIVE, MANIFEST, MEM_LIMIT, ORDERS,
    WIDE_GRANTS, ExportApi, check_export, describe, error_of, export_setting, omitted, proc_status_bytes,
    reset_peak_rss, run_cli, tree_files, unique, wait_for_s3_activity, wait_running_with_output,
    wide_count_sql, wide_cross_join_sql,
)
from tokens import CUSTOMERS, token_body
from trino_harness import wait_until

AUTH_FAILED = {"error": "authentication failed"}
MIB = 1024 * 1024
#: Projection of orders with every kind of value except attachments/vectors.
ORDERS_SQL = (f"SELECT order_id, region, customer_id, customer_email, amount, created_at "
              f"FROM {ORDERS} WHERE order_id % 3 = 0")
JOIN_SQL = (f"SELECT o.order_id, o.amount, o.customer_email, c.name, c.tier "
            f"FROM {ORDERS} o JOIN {CUSTOMERS} c ON o.customer_id = c.customer_id")
SMALL_SQL = f"SELECT order_id, region FROM {ORDERS} WHERE order_id < 50"
#: About 1 GiB of uncompressed Parquet: still running when a test interrupts it.
HUGE_SQL = wide_cross_join_sql(40)
#: Fault tests: small parts, so the object store is written to early
#: whether the gateway streams multipart uploads or uploads finished files.
HUGE_FIELDS = {"compression": "none", "max_file_bytes": 8 * MIB}
#: Memory test: 4 copies of the ~0.6M pairs with ~180-byte rows, about
#: 430 MiB of Parquet (13x MEM_LIMIT). Narrow rows on purpose: the query's
#: batches (8192 rows) stay small, so what grows is the writer's share.
MEM_REPEAT, MEM_COPIES = 4, 4


def assert_same_rows(exported: pa.Table, flight: pa.Table, what: str) -> None:
    assert exported.column_names == flight.column_names, (
        f"{what}: exported columns {exported.column_names} vs Flight {flight.column_names}")
    # both are sluice's (the export read back with pyarrow): identical types
    diff = diff_results(exported, flight, ordered=False, check_names=True, types="same")
    assert diff is None, f"{what}: export differs from Flight SQL\n{diff}"


def snapshot(env) -> dict:
    """Everything the gateway may write: both buckets and the export root."""
    return {
        BUCKET: env.s3.objects(BUCKET),
        FAULT_BUCKET: env.s3.state(FAULT_BUCKET),
        "root": tree_files(env.root),
    }


@contextlib.contextmanager
def cancelled_on_exit(api: ExportApi, job_ids: list[str]):
    """Best effort: a test that fails half-way does not leave its endless
    jobs running for the next one."""
    try:
        yield
    finally:
        for job_id in job_ids:
            with contextlib.suppress(Exception):
                api.delete(job_id)


# --- round trips -----------------------------------------------------------------------------

@pytest.mark.parametrize("base", [ACME_S3, ACME_FILE], ids=["s3", "file"])
def test_export_equals_flight_sql(exports, base):
    dest = f"{base}/{unique('roundtrip')}"
    job = exports.api("reader").run(JOIN_SQL, dest)
    exp = check_export(exports, job, key="reader", sql=JOIN_SQL)
    flight = exports.query("reader", JOIN_SQL)
    assert flight.num_rows == lake_counts.READER_ORDERS_WITH_CUSTOMER
    assert_same_rows(exp.table, flight, dest)
    assert [c["name"] for c in exp.manifest["schema"]] == flight.column_names
    assert exp.manifest["omitted_columns"] == []
    if base == ACME_S3:
        # pyarrow's own S3 client reads the dataset too (and skips _manifest.json)
        s3dest = exports.dest(dest)
        assert_same_rows(exports.s3.read_dataset(s3dest.bucket, s3dest.prefix), flight, f"{dest} via S3FileSystem")


def test_job_json_while_and_after_running(exports):
    api = exports.api("reader")
    dest = f"{ACME_S3}/{unique('job')}"
    r = api.post(ORDERS_SQL, dest)
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["Location"].endswith(f"/v1/exports/{job['id']}")
    assert job["token_id"] == exports.tokens["reader"]["id"]
    assert job["compression"] == "zstd" and job["max_file_bytes"] == 512 * MIB, job
    assert job["error"] is None and job["cancel_requested"] is False, job
    assert job["state"] == "queued", job  # the POST answers the job as created
    assert job["manifest"] is None and job["summary"] is None and job["finished_at"] is None, job
    done = api.wait(job["id"])
    assert api.job(job["id"]) == done, "a finished job no longer changes"
    exp = check_export(exports, done, key="reader", sql=ORDERS_SQL)
    assert exp.manifest["rows"] == exports.query("reader", f"SELECT count(*) AS n FROM ({ORDERS_SQL}) t")["n"][0].as_py()


def test_policy_fingerprint_follows_the_policy(exports):
    fps = []
    for key in ["reader", "reader", "eu_analyst"]:
        dest = f"{ACME_FILE}/{unique('fp-' + key)}"
        exp = check_export(exports, exports.api(key).run(SMALL_SQL, dest), key=key, sql=SMALL_SQL)
        fps.append(exp.manifest["policy_fingerprint"])
    assert fps[0] == fps[1], f"same token, same policy: {fps}"
    assert fps[0] != fps[2], f"different grants must give different policy fingerprints: {fps}"


@pytest.mark.parametrize("compression", ["zstd", "snappy", "gzip", "lz4", "none"])
def test_compression(exports, compression):
    sql = f"SELECT * FROM {ORDERS}"
    dest = f"{ACME_S3}/{unique('codec-' + compression)}"
    job = exports.api("reader").run(sql, dest, compression=compression)
    exp = check_export(exports, job, key="reader", sql=sql, compression=compression)
    assert_same_rows(exp.table, exports.query("reader", sql), dest)


def test_empty_result_is_one_file_of_zero_rows(exports):
    sql = f"SELECT order_id, region FROM {ORDERS} WHERE order_id < 0"
    job = exports.api("reader").run(sql, f"{ACME_FILE}/{unique('empty')}")
    exp = check_export(exports, job, key="reader", sql=sql)
    assert len(exp.parts) == 1 and exp.manifest["rows"] == 0, exp.manifest
    assert exp.table.column_names == ["order_id", "region"]


def test_small_max_file_bytes_splits_into_parts(exports):
    sql = f"SELECT * FROM {ORDERS}"
    max_bytes = 64 * 1024
    dest = f"{ACME_S3}/{unique('split')}"
    job = exports.api("reader").run(sql, dest, compression="none", max_file_bytes=max_bytes)
    exp = check_export(exports, job, key="reader", sql=sql, compression="none", max_file_bytes=max_bytes)
    sizes = [f["bytes"] for f, _ in exp.parts]
    # at least 3 parts, not a fixed number: where a part ends depends on the
    # order in which the scan's batches arrive
    assert len(sizes) >= 3, f"~220 KB uncompressed in 64 KiB files, got {sizes}"
    assert all(f["rows"] > 0 for f, _ in exp.parts), f"a split leaves no empty part: {exp.manifest['files']}"
    assert_same_rows(exp.table, exports.query("reader", sql), dest)


# --- policy --------------------------------------------------------------------------------

ATTACHMENT = (ORDERS, "attachment", "attachment")
VECTOR = (ORDERS, "embedding", "vector")
POLICY_CASES = {
    # hash mask, row rule on a token attribute, deny rule, clearance 2
    "eu_analyst": (f"SELECT * FROM {ORDERS}", set(), lake_counts.EU_ANALYST_ORDERS),
    # also granted the attachment and vector columns, both flags off
    "rowrule_hash_deny": (f"SELECT * FROM {ORDERS}", {ATTACHMENT, VECTOR}, lake_counts.EU_ANALYST_ORDERS),
    # partial masks on both tables, clearance 1, attachments visible
    "clearance_partial": (f"SELECT o.*, c.name, c.tier FROM {ORDERS} o LEFT JOIN {CUSTOMERS} c "
                          f"ON o.customer_id = c.customer_id", set(), lake_counts.CLEARANCE_PARTIAL_ORDERS),
    # redact and null masks, several allow rules, deny rule on a hidden value;
    # a "*" grant: the hidden attachment/vector columns are not named
    "multi_allow_redact": (f"SELECT * FROM {ORDERS}", set(), lake_counts.MULTI_ALLOW_REDACT_ORDERS),
}


@pytest.mark.parametrize("key", sorted(POLICY_CASES))
def test_export_is_what_the_token_sees(exports, expect, lake, key):
    sql, want_omitted, want_rows = POLICY_CASES[key]
    dest = f"{ACME_S3}/{unique('policy-' + key)}"
    job = exports.api(key).run(sql, dest)
    exp = check_export(exports, job, key=key, sql=sql)
    flight = exports.query(key, sql)
    assert flight.num_rows == want_rows
    assert_same_rows(exp.table, flight, f"{key}: {sql}")
    # and what DESIGN §4 says the token sees (DuckDB over its secure views)
    oracle = expect(exports.tokens.bodies[key], sql)
    assert diff_results(exp.table, oracle, ordered=False, check_names=True) is None, f"{key}: export vs oracle"
    assert omitted(exp.manifest) == want_omitted, exp.manifest["omitted_columns"]
    assert not {c for _, c, _ in want_omitted} & set(exp.table.column_names), exp.table.column_names
    # every one of these tokens masks customer_email: no real address leaves
    raw = {e for e in lake.sources["sales.orders"]["customer_email"].to_pylist() if e}
    leaked = raw & set(exp.table["customer_email"].to_pylist())
    assert not leaked, f"{key}: unmasked emails exported: {sorted(leaked)[:3]}"


def test_row_limit_truncates_the_export(exports):
    sql = f"SELECT order_id, region, customer_email, amount FROM {ORDERS}"
    full = exports.query("reader", sql)
    assert full.num_rows == lake_counts.READER_ORDERS  # above the limited token's 100
    job = exports.api("limited").run(sql, f"{ACME_S3}/{unique('limit')}")
    assert job["truncated"] is True and job["rows"] == 100 == job["row_limit"], job
    exp = check_export(exports, job, key="limited", sql=sql, truncated=True)
    assert exp.table.num_rows == 100
    extra = collections.Counter(table_rows(exp.table)) - collections.Counter(table_rows(full))
    assert not extra, f"exported rows that are not visible rows: {list(extra)[:3]}"


def test_attachment_and_vector_columns_omitted_without_flags(exports):
    sql = f"SELECT * FROM {ORDERS}"
    job = exports.api("hidden_cols").run(sql, f"{ACME_S3}/{unique('hidden')}")
    exp = check_export(exports, job, key="hidden_cols", sql=sql)
    assert "attachment" not in exp.table.column_names and "embedding" not in exp.table.column_names
    assert omitted(exp.manifest) == {ATTACHMENT, VECTOR}, exp.manifest["omitted_columns"]
    assert_same_rows(exp.table, exports.query("hidden_cols", sql), "hidden_cols")


def test_star_grant_names_no_hidden_column(exports):
    """A "*" grant never reveals the names of the columns the flags hide."""
    sql = f"SELECT * FROM {ORDERS}"
    job = exports.api("hidden_star").run(sql, f"{ACME_S3}/{unique('star')}")
    exp = check_export(exports, job, key="hidden_star", sql=sql)
    assert "attachment" not in exp.table.column_names and "embedding" not in exp.table.column_names
    assert exp.manifest["omitted_columns"] == [], exp.manifest["omitted_columns"]
    assert "attachment" not in json.dumps(job) and "embedding" not in json.dumps(job)


def test_attachment_and_vector_columns_exported_with_flags(exports):
    sql = f"SELECT order_id, attachment, embedding FROM {ORDERS}"
    job = exports.api("reader").run(sql, f"{ACME_FILE}/{unique('attach')}")
    exp = check_export(exports, job, key="reader", sql=sql)
    assert omitted(exp.manifest) == set()
    assert pa.types.is_binary(exp.table.schema.field("attachment").type) or \
        pa.types.is_large_binary(exp.table.schema.field("attachment").type), exp.table.schema
    assert sum(1 for v in exp.table["attachment"].to_pylist() if v) == lake_counts.READER_NON_EMPTY_ATTACHMENTS
    assert all(v is None or len(v) == 8 for v in exp.table["embedding"].to_pylist())
    assert_same_rows(exp.table, exports.query("reader", sql), "reader attachments")


def test_hidden_column_named_in_the_sql_is_refused(exports):
    before = snapshot(exports)
    r = exports.api("hidden_cols").post(f"SELECT order_id, attachment FROM {ORDERS}", f"{ACME_S3}/{unique('x')}")
    assert r.status_code == 400, r.text
    assert "not found or not allowed" in error_of(r).lower(), r.text
    assert snapshot(exports) == before


# --- destinations ----------------------------------------------------------------------------

OUTSIDE = {
    "other_prefix": f"s3://{BUCKET}/other/q1",
    "bucket_root_object": f"s3://{BUCKET}/q1",
    "other_bucket": "s3://elsewhere/acme/q1",
    "string_prefix": f"s3://{BUCKET}/ac/q1",
    "sibling": f"s3://{BUCKET}/acme-evil",
    "below_sibling": f"s3://{BUCKET}/acme-evil/q1",
    "longer_name": f"s3://{BUCKET}/acmeq1",
    "file_other": "file:///other/q1",
    "file_sibling": "file:///acme-evil/q1",
    "file_longer_name": "file:///acme2",
}
MALFORMED = {
    "dotdot": f"s3://{BUCKET}/acme/../other",
    "dotdot_inside": f"s3://{BUCKET}/acme/q/../../other/x",
    "dot": f"s3://{BUCKET}/acme/./q1",
    "empty_segment": f"s3://{BUCKET}/acme//q1",
    "escaped_dotdot": f"s3://{BUCKET}/acme/%2e%2e/other",
    "escaped_slash": f"s3://{BUCKET}/acme/q%2F..%2Fx",
    "escape": f"s3://{BUCKET}/acme/q%41",
    "backslash": f"s3://{BUCKET}/acme\\..\\other",
    "control_char": f"s3://{BUCKET}/acme/q\x01",
    "tilde": f"s3://{BUCKET}/acme/q~1",
    "tilde_segment": f"s3://{BUCKET}/acme/~/q1",
    "file_tilde": "file:///acme/~/x",
    "file_tilde_user": "file:///acme/~root",
    "newline": f"s3://{BUCKET}/acme/q\n1",
    "file_dotdot": "file:///acme/../../etc",
    "file_dotdot_sibling": "file:///acme/../acme-evil/x",
    "file_escaped": "file:///acme/%2e%2e/x",
    "file_empty_segment": "file:///acme//x",
    "file_staging": "file:///.sluice-staging/x",
    "file_staging_job": "file:///.sluice-staging/acme",
    "no_bucket": "s3:///acme/q1",
    "other_scheme": "gs://exports/acme/q1",
    "http": "http://127.0.0.1/acme/q1",
    "empty": "",
}


@pytest.mark.parametrize("name", sorted(OUTSIDE))
def test_destination_outside_the_tokens_prefixes_403(exports, name):
    before = snapshot(exports)
    r = exports.api("reader").post(SMALL_SQL, OUTSIDE[name])
    assert r.status_code == 403, f"{OUTSIDE[name]!r} -> {r.status_code}: {r.text}"
    error_of(r)
    assert snapshot(exports) == before


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_destination_400(exports, name):
    before = snapshot(exports)
    r = exports.api("reader").post(SMALL_SQL, MALFORMED[name])
    assert r.status_code == 400, f"{MALFORMED[name]!r} -> {r.status_code}: {r.text}"
    error_of(r)
    assert snapshot(exports) == before


def test_staging_name_is_reserved(exports):
    """``.sluice-staging`` (where local files wait for the commit) is no
    destination: 400 before any prefix check."""
    api = exports.api("exact")
    before = snapshot(exports)
    r = api.post(SMALL_SQL, "file:///.sluice-staging/solo")
    assert r.status_code == 400, r.text
    # S3 stages nothing under that name: an ordinary destination outside the token's prefixes
    r = api.post(SMALL_SQL, f"s3://{BUCKET}/.sluice-staging/solo")
    assert r.status_code == 403, r.text
    assert snapshot(exports) == before


def test_token_without_export_destinations_403(exports):
    api = exports.api("no_exports")
    for dest in (f"{ACME_S3}/{unique('none')}", f"{ACME_FILE}/{unique('none')}"):
        r = api.post(SMALL_SQL, dest)
        assert r.status_code == 403, f"{dest} -> {r.status_code}: {r.text}"
        error_of(r)


def test_only_the_listed_scheme_is_allowed(exports):
    api = exports.api("s3_only")
    r = api.post(SMALL_SQL, f"{ACME_FILE}/{unique('s3only')}")
    assert r.status_code == 403, r.text
    dest = f"{ACME_S3}/{unique('s3only')}"
    check_export(exports, api.run(SMALL_SQL, dest), key="s3_only", sql=SMALL_SQL)


@pytest.mark.parametrize("dest", [f"s3://{BUCKET}/solo", "file:///solo"], ids=["s3", "file"])
def test_destination_equal_to_the_prefix(exports, dest):
    job = exports.api("exact").run(SMALL_SQL, dest)
    check_export(exports, job, key="exact", sql=SMALL_SQL)


@pytest.mark.parametrize("base", [ACME_S3, ACME_FILE], ids=["s3", "file"])
def test_destination_not_empty_409(exports, base):
    api = exports.api("reader")
    dest = f"{base}/{unique('twice')}"
    api.run(SMALL_SQL, dest)
    # something that is not an export is in the way, too
    foreign = exports.dest(f"{base}/{unique('foreign')}")
    if base == ACME_S3:
        exports.s3.put(foreign.bucket, f"{foreign.prefix}/notes.txt", b"not an export")
    else:
        foreign.path.mkdir(parents=True)
        (foreign.path / "notes.txt").write_bytes(b"not an export")
    before = snapshot(exports)
    # the same destination again; the listed prefix itself (allowed, and
    # not empty by now); the foreign object's prefix
    for target in (dest, base, foreign.uri):
        r = api.post(SMALL_SQL, target)
        assert r.status_code == 409, f"{target} -> {r.status_code}: {r.text}"
        error_of(r)
    assert snapshot(exports) == before, "a refused export changed the destination"


@pytest.mark.parametrize("base", [ACME_S3, ACME_FILE])
def test_destination_inside_an_earlier_export_409(exports, base):
    """Readers of an export list its directory: a later export below it (or
    at its manifest's key) would mix into it."""
    api = exports.api("reader")
    dest = f"{base}/{unique('outer')}"
    api.run(SMALL_SQL, dest)
    before = snapshot(exports)
    for target in (f"{dest}/sub", f"{dest}/a/b", f"{dest}/_manifest.json"):
        r = api.post(SMALL_SQL, target)
        assert r.status_code == 409, f"{target} -> {r.status_code}: {r.text}"
        # locally the manifest's path is a file on the way; S3 has no directories
        local_file = base == ACME_FILE and target.endswith(MANIFEST)
        expected = ("a part of the destination is a file" if local_file
                    else "lies inside an earlier export (a _manifest.json above it)")
        assert error_of(r) == f"destination {target}{':' if local_file else ''} {expected}", r.text
    assert snapshot(exports) == before


def test_one_tokens_jobs_do_not_keep_others_waiting(exports):
    """max_running_per_token = 1 (default), concurrency 2: a token with two
    endless jobs runs one; another token's small export runs meanwhile."""
    hog = exports.api("queue")
    jobs: list[str] = []
    with cancelled_on_exit(hog, jobs):
        for i in range(2):
            jobs.append(hog.submit(HUGE_SQL, f"file:///queue/{unique(f'hog{i}')}", compression="none")["id"])
        wait_until(lambda: hog.job(jobs[0])["state"] == "running", timeout_s=60, what="the first job running")
        time.sleep(1.5)  # runners claim every second at the latest
        assert hog.job(jobs[1])["state"] == "queued", "the token's second job must wait"
        small = exports.api("reader").run(SMALL_SQL, f"{ACME_FILE}/{unique('fair')}", timeout_s=60)
        assert small["state"] == "succeeded", small
        assert hog.job(jobs[1])["state"] == "queued"
    for j in jobs:
        hog.wait(j, timeout_s=60)


def test_local_destination_through_a_symlink_or_a_file_409(exports, tmp_path):
    """An existing part of a local destination that is a symbolic link
    (which could lead outside the root) or a file: 409, nothing written
    anywhere, neither inside the root nor where the link points."""
    api = exports.api("reader")
    acme = exports.root / "acme"
    acme.mkdir(parents=True, exist_ok=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    link = acme / unique("link")
    link.symlink_to(outside, target_is_directory=True)
    afile = acme / unique("afile")
    afile.write_bytes(b"not a directory")
    targets = [
        f"{ACME_FILE}/{link.name}/q",
        f"{ACME_FILE}/{link.name}/a/b",
        f"{ACME_FILE}/{link.name}",
        f"{ACME_FILE}/{afile.name}/q",
        f"{ACME_FILE}/{afile.name}",
    ]
    accepted = []
    try:
        before = snapshot(exports)
        answers = {}
        with cancelled_on_exit(api, accepted):
            for target in targets:
                r = answers[target] = api.post(SMALL_SQL, target)
                if r.status_code == 202:
                    accepted.append(r.json()["id"])
            finals = [api.wait(j, timeout_s=60) for j in accepted]
        written = tree_files(outside)
        assert all(r.status_code == 409 for r in answers.values()), (
            f"expected 409 for each: {[(t, r.status_code, r.text) for t, r in answers.items()]}; "
            f"jobs accepted: {finals}; written outside the root: {written}")
        for r in answers.values():
            error_of(r)
        assert written == {} and list(outside.iterdir()) == [], f"written through the link: {written}"
        assert afile.read_bytes() == b"not a directory"
        assert snapshot(exports) == before
    finally:
        link.unlink()
        afile.unlink()


@pytest.mark.parametrize(
    "field,value",
    [("compression", "brotli"), ("compression", ""), ("max_file_bytes", 64 * 1024 - 1), ("max_file_bytes", 0),
     ("max_file_bytes", -1)],
)
def test_bad_options_400(exports, field, value):
    before = snapshot(exports)
    r = exports.api("reader").post(SMALL_SQL, f"{ACME_S3}/{unique('opt')}", **{field: value})
    assert r.status_code == 400, f"{field}={value!r} -> {r.status_code}: {r.text}"
    error_of(r)
    assert snapshot(exports) == before


#: Column names a Parquet file (and its reader) could not tell apart.
DUPLICATE_COLUMNS = {
    "same_column": f"SELECT order_id, order_id FROM {ORDERS}",
    "self_join": (f"SELECT o.order_id, p.order_id FROM {ORDERS} o JOIN {ORDERS} p "
                  f"ON o.order_id = p.order_id"),
    "join_star": f"SELECT * FROM {ORDERS} o JOIN {CUSTOMERS} c ON o.customer_id = c.customer_id",
    "alias": f"SELECT order_id AS x, region AS x FROM {ORDERS}",
}


@pytest.mark.parametrize("name", sorted(DUPLICATE_COLUMNS))
def test_duplicate_column_names_400(exports, name):
    sql = DUPLICATE_COLUMNS[name]
    before = snapshot(exports)
    r = exports.api("reader").post(sql, f"{ACME_S3}/{unique('dup')}")
    assert r.status_code == 400, f"{sql!r} -> {r.status_code}: {r.text}"
    error_of(r)
    assert snapshot(exports) == before
    # named apart, the same join exports
    if name == "self_join":
        ok = sql.replace("p.order_id FROM", "p.order_id AS order_id2 FROM")
        check_export(exports, exports.api("reader").run(ok, f"{ACME_FILE}/{unique('dup-ok')}"),
                     key="reader", sql=ok)


def _columns_sql(n: int) -> str:
    return "SELECT " + ", ".join(f"order_id AS c{i}" for i in range(n)) + f" FROM {ORDERS} LIMIT 50"


#: ``max_file_bytes`` must hold the footer of a result of N columns, twice:
#: 2 * (4096 + 256 * N) bytes (README).
WIDE_COLUMNS = 200
WIDE_FOOTER_MIN = 2 * (4096 + 256 * WIDE_COLUMNS)


@pytest.mark.parametrize("max_bytes", [64 * 1024, WIDE_FOOTER_MIN - 1], ids=["64KiB", "one_below"])
def test_max_file_bytes_too_small_for_the_columns_400(exports, max_bytes):
    assert max_bytes < WIDE_FOOTER_MIN
    before = snapshot(exports)
    r = exports.api("reader").post(_columns_sql(WIDE_COLUMNS), f"{ACME_S3}/{unique('cols')}",
                                   max_file_bytes=max_bytes)
    assert r.status_code == 400, f"{WIDE_COLUMNS} columns, max_file_bytes {max_bytes} -> {r.status_code}: {r.text}"
    error_of(r)
    assert snapshot(exports) == before


def test_max_file_bytes_just_enough_for_the_columns(exports):
    sql = _columns_sql(WIDE_COLUMNS)
    job = exports.api("reader").run(sql, f"{ACME_FILE}/{unique('cols-ok')}", max_file_bytes=WIDE_FOOTER_MIN)
    exp = check_export(exports, job, key="reader", sql=sql, max_file_bytes=WIDE_FOOTER_MIN)
    assert exp.table.num_columns == WIDE_COLUMNS and exp.table.num_rows == 50, exp.manifest


@pytest.mark.parametrize(
    "sql",
    ["SELEC order_id FROM lake.sales.orders", f"DROP TABLE {ORDERS}", f"DELETE FROM {ORDERS}",
     f"SELECT no_such_column FROM {ORDERS}", "COPY (SELECT 1) TO '/tmp/sluice-export-copy.parquet'", ""],
    ids=["syntax", "ddl", "dml", "column", "copy", "empty"],
)
def test_bad_sql_400(exports, sql):
    before = snapshot(exports)
    r = exports.api("reader").post(sql, f"{ACME_S3}/{unique('sql')}")
    assert r.status_code == 400, f"{sql!r} -> {r.status_code}: {r.text}"
    error_of(r)
    assert snapshot(exports) == before


def _sub_word(text: str, word: str) -> str:
    return re.sub(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])", "<name>", text)


@pytest.mark.parametrize(
    "key,hidden,missing,template",
    [
        ("reader", "salaries", "nope", "SELECT * FROM lake.hr.{t}"),
        ("reader", "hr", "zz", "SELECT * FROM lake.{t}.salaries"),
        ("eu_analyst", "customers", "nope", "SELECT * FROM lake.sales.{t}"),
    ],
)
def test_ungranted_table_404_same_as_missing(exports, key, hidden, missing, template):
    api = exports.api(key)
    r_hidden = api.post(template.format(t=hidden), f"{ACME_S3}/{unique('nf')}")
    r_missing = api.post(template.format(t=missing), f"{ACME_S3}/{unique('nf')}")
    assert r_hidden.status_code == r_missing.status_code == 404, (r_hidden.text, r_missing.text)
    e_hidden, e_missing = error_of(r_hidden), error_of(r_missing)
    assert "not found" in e_hidden.lower(), e_hidden
    assert _sub_word(e_hidden, hidden) == _sub_word(e_missing, missing), (e_hidden, e_missing)


# --- authentication and ownership ------------------------------------------------------------

def test_unauthenticated_requests_get_one_answer(exports):
    revoked = exports.server.create_token(
        token_body("exp-revoked", ALL_SALES, max_sensitivity=3, export_destinations=ACME))
    assert ExportApi(exports.server.http_base, revoked["secret"]).list().status_code == 200  # control
    assert exports.server.revoke_token(revoked["id"]).status_code == 200
    job = exports.api("reader").run(SMALL_SQL, f"{ACME_FILE}/{unique('auth')}")
    credentials = {
        "no_header": None,
        "garbage_bearer": "Bearer this-is-not-a-token",
        "unknown_secret": "Bearer " + secrets.token_urlsafe(32),
        "revoked": "Bearer " + revoked["secret"],
        "other_scheme": "Basic dXNlcjpwYXNz",
    }
    before = snapshot(exports)
    bodies = {}
    for kind, header in credentials.items():
        api = exports.anon(header)
        for what, r in [
            ("POST", api.post(SMALL_SQL, f"{ACME_S3}/{unique('auth')}")),
            ("GET list", api.list()),
            ("GET list all", api.list(all_jobs=True)),
            ("GET job", api.get(job["id"])),
            ("DELETE job", api.delete(job["id"])),
        ]:
            assert r.status_code == 401, f"{kind} {what} -> {r.status_code}: {r.text}"
            assert r.json() == AUTH_FAILED, f"{kind} {what}: {r.text}"
            bodies[(kind, what)] = r.text
    assert len(set(bodies.values())) == 1, bodies
    assert snapshot(exports) == before
    assert exports.api("reader").job(job["id"])["state"] == "succeeded"


def test_other_tokens_job_is_not_found(exports):
    owner, other = exports.api("reader"), exports.api("other")
    job = owner.run(SMALL_SQL, f"{ACME_S3}/{unique('owned')}")
    fake = str(uuid.uuid4())
    for method in ("get", "delete"):
        r_other = getattr(other, method)(job["id"])
        r_fake = getattr(other, method)(fake)
        assert r_other.status_code == r_fake.status_code == 404, (method, r_other.text, r_fake.text)
        assert r_other.json() == {"error": f"export job '{job['id']}' not found"}, r_other.text
        assert r_fake.json() == {"error": f"export job '{fake}' not found"}, r_fake.text
        assert r_other.text.replace(job["id"], "<id>") == r_fake.text.replace(fake, "<id>")
    # the owner's job is untouched, and finished jobs cannot be cancelled
    assert owner.job(job["id"]) == job
    r = owner.delete(job["id"])
    assert r.status_code == 409, r.text
    assert owner.get(fake).status_code == 404 and owner.delete(fake).status_code == 404


def test_job_lists_are_per_token(exports):
    other, reader = exports.api("other"), exports.api("reader")
    first = other.run(SMALL_SQL, f"{ACME_FILE}/{unique('list')}")
    second = other.run(SMALL_SQL, f"{ACME_S3}/{unique('list')}")
    other_id = exports.tokens["other"]["id"]
    listed = other.jobs()
    assert all(j["token_id"] == other_id for j in listed), listed
    ids = [j["id"] for j in listed]
    assert ids.index(second["id"]) < ids.index(first["id"]), f"newest first: {ids}"
    # lists leave out the manifest content (``summary``); the rest is the job
    assert {j["id"]: j for j in listed}[second["id"]] == {**second, "summary": None}
    mine = {first["id"], second["id"]}
    r = reader.list()
    assert r.status_code == 200, r.text
    assert not mine & {j["id"] for j in r.json()["jobs"]}, "another token's jobs listed"
    r = reader.list(all_jobs=True)
    assert r.status_code == 403, r.text  # ?all=true is for admins
    assert error_of(r) == "this operation needs an admin token"
    admin = exports.admin()
    assert mine <= {j["id"] for j in admin.jobs(all_jobs=True)}
    assert not mine & {j["id"] for j in admin.jobs()}, "an admin's own list holds only its jobs"


def test_lists_leave_out_the_summary(exports):
    """GET /v1/exports carries no manifest content ("summary": null); the
    single job's answer carries it (the manifest's JSON)."""
    api = exports.api("other")
    dest = f"{ACME_FILE}/{unique('summary')}"
    job = api.run(SMALL_SQL, dest)
    exp = check_export(exports, job, key="other", sql=SMALL_SQL)  # job["summary"] == the manifest
    assert isinstance(job["summary"], dict) and job["summary"]["job_id"] == job["id"], job
    assert exp.manifest["files"] == job["summary"]["files"]
    listed = api.jobs()
    assert job["id"] in {j["id"] for j in listed}, listed
    for j in listed:
        assert "summary" in j and j["summary"] is None, f"a list carries a manifest: {j}"
    assert {j["id"]: j for j in listed}[job["id"]] == {**job, "summary": None}
    everyone = exports.admin().jobs(all_jobs=True)
    assert job["id"] in {j["id"] for j in everyone}
    assert all(j.get("summary", "missing") is None for j in everyone), [j for j in everyone if j.get("summary")]
    # and the single answer still has it
    assert api.job(job["id"])["summary"] == exp.manifest


# --- limits, queue and cancelling --------------------------------------------------------------

def test_live_jobs_per_token_limit_and_cancel(exports):
    """concurrency 2, max_jobs_per_token 4, max_running_per_token 1: of four
    endless jobs one runs and three wait, a fifth is refused (429); all four
    cancel, and nothing is left; then the token may export again."""
    api = exports.api("queue")
    before = snapshot(exports)
    jobs = []
    with cancelled_on_exit(api, jobs):
        for i in range(4):
            jobs.append(api.submit(HUGE_SQL, f"file:///queue/{unique(f'q{i}')}", compression="none")["id"])
        r = api.post(HUGE_SQL, f"file:///queue/{unique('q4')}", compression="none")
        assert r.status_code == 429, r.text
        error_of(r)
        wait_until(lambda: [api.job(j)["state"] for j in jobs].count("running") == 1, timeout_s=60,
                   what="one of the token's jobs running")
        time.sleep(1.5)  # runners claim every second at the latest
        states = {j: api.job(j)["state"] for j in jobs}
        assert sorted(states.values()) == ["queued", "queued", "queued", "running"], states
        assert {j["id"] for j in api.jobs()[:4]} == set(jobs), "the newest jobs come first"
        for job_id in sorted(jobs, key=lambda j: states[j] == "running"):  # the queued ones first
            r = api.delete(job_id)
            assert r.status_code == 200, r.text
            body = r.json()
            if states[job_id] == "queued":
                assert body["state"] == "cancelled", body
            else:
                # a running job stops at its next batch: the answer may come first
                assert body["state"] == "cancelled" or (body["state"] == "running" and body["cancel_requested"]), body
        finals = [api.wait(j, timeout_s=60) for j in jobs]
    assert [f["state"] for f in finals] == ["cancelled"] * 4, finals
    assert all(f["manifest"] is None for f in finals), finals
    wait_until(lambda: snapshot(exports) == before, timeout_s=30, what="nothing left of the cancelled jobs")
    small = wide_cross_join_sql(1, limit=10)
    check_export(exports, api.run(small, f"file:///queue/{unique('after')}"), key="queue", sql=small)


def test_concurrent_submissions_respect_max_jobs_per_token(exports):
    """20 POSTs of endless jobs at once from one token: exactly
    max_jobs_per_token are accepted (202), the rest 429; the limit holds
    however the requests interleave."""
    limit = export_setting(exports, "max_jobs_per_token")
    n = 20
    assert n > limit
    api = exports.api("queue")
    before = snapshot(exports)
    start = threading.Barrier(n)

    def post(i: int):
        start.wait(timeout=30)
        return api.post(HUGE_SQL, f"file:///queue/{unique(f'par{i}')}", compression="none")

    accepted: list[str] = []
    with cancelled_on_exit(api, accepted):
        with ThreadPoolExecutor(n) as pool:
            answers = list(pool.map(post, range(n)))
        accepted += [r.json()["id"] for r in answers if r.status_code == 202]
        codes = collections.Counter(r.status_code for r in answers)
        others = [(r.status_code, r.text) for r in answers if r.status_code not in (202, 429)]
        assert not others, f"answers other than 202/429: {others}"
        for r in answers:
            if r.status_code == 429:
                error_of(r)
        live = [j for j in api.jobs() if j["state"] in LIVE]
        # endless jobs do not end, so a 429 means the limit was reached
        assert codes[202] == limit == len(live), (
            f"max_jobs_per_token {limit}: {codes[202]} accepted, {len(live)} live: {dict(codes)}")
        for job_id in accepted:
            assert api.delete(job_id).status_code == 200  # endless jobs are still live
        finals = [api.wait(j, timeout_s=60) for j in accepted]
    assert all(f["state"] == "cancelled" for f in finals), finals
    wait_until(lambda: snapshot(exports) == before, timeout_s=30, what="nothing left of the cancelled jobs")


def test_s3_cut_mid_upload_fails_and_leaves_nothing(exports):
    api, s3, proxy = exports.api("big"), exports.s3, exports.proxy
    before = s3.state(FAULT_BUCKET)
    dest = exports.dest(f"s3://{FAULT_BUCKET}/big/{unique('cut')}")
    job_id = api.submit(HUGE_SQL, dest.uri, **HUGE_FIELDS)["id"]
    with cancelled_on_exit(api, [job_id]):
        try:
            busy = wait_for_s3_activity(api, job_id, s3, FAULT_BUCKET, before, min_parts=1)
            assert dest.files() == {}, "nothing may appear at the destination before the job commits"
            proxy.close()
            failed = api.wait(job_id, timeout_s=60)
            left = s3.state(FAULT_BUCKET)
        finally:
            proxy.forward()
    print(f"\nat the cut: {busy}; after the failure, before the janitor: {left}")
    assert failed["state"] == "failed", failed
    assert isinstance(failed["error"], str) and failed["error"], failed
    assert failed["manifest"] is None and failed["finished_at"] is not None, failed
    assert dest.files() == {}
    wait_until(lambda: s3.state(FAULT_BUCKET) == before, timeout_s=30,
               what=f"no object or open multipart upload left in s3://{FAULT_BUCKET}")
    assert api.delete(job_id).status_code == 409


def test_s3_cleanup_pending_blocks_the_destination_and_spares_the_next_job(exports):
    """A job fails while S3 is down, so its open upload cannot be aborted
    at once: the destination is refused (its cleanup is not finished) until
    the janitor is done; then a new export there succeeds, and later
    janitor passes leave its files alone."""
    api, s3, proxy = exports.api("big"), exports.s3, exports.proxy
    before = s3.state(FAULT_BUCKET)
    dest = exports.dest(f"s3://{FAULT_BUCKET}/big/{unique('reuse')}")
    small = wide_cross_join_sql(1, limit=2000)
    job_id = api.submit(HUGE_SQL, dest.uri, **HUGE_FIELDS)["id"]
    extra: list[str] = []
    with cancelled_on_exit(api, [job_id]), cancelled_on_exit(api, extra):
        try:
            busy = wait_for_s3_activity(api, job_id, s3, FAULT_BUCKET, before, min_parts=1)
            proxy.close()
            failed = api.wait(job_id, timeout_s=60)
            left = s3.state(FAULT_BUCKET)
            # the leftovers are still there (the store is down): refused
            refused = {}
            for target in (dest.uri, f"{dest.uri}/below"):
                r = api.post(small, target)
                refused[target] = r
                if r.status_code == 202:
                    extra.append(r.json()["id"])
            still_left = s3.state(FAULT_BUCKET)
        finally:
            proxy.forward()
        print(f"\nat the cut: {busy}; after the failure: {left}; "
              f"while down: {[(t, r.status_code, r.text) for t, r in refused.items()]}")
        assert failed["state"] == "failed" and failed["manifest"] is None, failed
        assert left["uploads"], f"the failed job's upload could not have been aborted with S3 down: {left}"
        assert still_left == left, (left, still_left)
        for target, r in refused.items():
            # refused from the store's record of the pending cleanup, without asking S3
            assert r.status_code == 409, f"{target} while its cleanup is pending -> {r.status_code}: {r.text}"
            assert error_of(r) == f"an earlier export job's cleanup at {target} is not finished; try again later", \
                r.text
        wait_until(lambda: s3.state(FAULT_BUCKET) == before, timeout_s=30,
                   what=f"the janitor aborted the upload left in s3://{FAULT_BUCKET}")

        # S3 is clean; the store may take one more janitor pass to forget
        def submitted():
            r = api.post(small, dest.uri)
            if r.status_code == 409 and "cleanup" in error_of(r).lower():
                return None
            assert r.status_code == 202, f"{dest.uri} after the cleanup -> {r.status_code}: {r.text}"
            extra.append(r.json()["id"])
            return r.json()

        job = wait_until(submitted, timeout_s=15, what=f"{dest.uri} accepted again after the janitor")
        done = api.wait(job["id"])
    assert done["state"] == "succeeded", done
    check_export(exports, done, key="big", sql=small)
    files = dest.files()
    time.sleep(4)  # a few janitor passes (cleanup_interval 1s)
    assert dest.files() == files, f"files of the later job changed: {files} -> {dest.files()}"
    assert not s3.multipart_uploads(FAULT_BUCKET), s3.multipart_uploads(FAULT_BUCKET)
    exp = check_export(exports, done, key="big", sql=small)
    assert exp.manifest["rows"] == 2000, exp.manifest
    assert api.delete(job_id).status_code == 409
    for name in files:  # leave the fault bucket as it was
        with contextlib.suppress(Exception):
            s3.boto.delete_object(Bucket=FAULT_BUCKET, Key=f"{dest.prefix}/{name}")


def test_cancel_while_s3_is_paused(exports):
    api, s3, proxy = exports.api("big"), exports.s3, exports.proxy
    before = s3.state(FAULT_BUCKET)
    dest = exports.dest(f"s3://{FAULT_BUCKET}/big/{unique('cancel')}")
    job_id = api.submit(HUGE_SQL, dest.uri, **HUGE_FIELDS)["id"]
    with cancelled_on_exit(api, [job_id]):
        try:
            wait_for_s3_activity(api, job_id, s3, FAULT_BUCKET, before)
            proxy.pause()
            assert api.job(job_id)["state"] == "running"
            assert dest.files() == {}
            t0 = time.monotonic()
            r = api.delete(job_id)
            answered_s = time.monotonic() - t0
        finally:
            proxy.forward()
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["id"] == job_id
        # a running job stops at its next batch: the answer may come first
        assert body["state"] == "cancelled" or (body["state"] == "running" and body["cancel_requested"]), body
        # wall clock: it may wait a little for the job to stop, never for the store
        assert answered_s < 20, f"DELETE took {answered_s:.1f}s while the object store hung"
        final = api.wait(job_id, timeout_s=60)
    assert final["state"] == "cancelled" and final["manifest"] is None, final
    wait_until(lambda: s3.state(FAULT_BUCKET) == before, timeout_s=30,
               what=f"no object or open multipart upload left in s3://{FAULT_BUCKET}")
    assert dest.files() == {}
    assert api.delete(job_id).status_code == 409


def test_cancel_local_export_mid_job(exports):
    api = exports.api("big")
    before = tree_files(exports.root)
    dest = exports.dest(f"file:///big/{unique('cancel')}")
    job_id = api.submit(HUGE_SQL, dest.uri, **HUGE_FIELDS)["id"]
    with cancelled_on_exit(api, [job_id]):
        running = wait_running_with_output(api, job_id)
        assert dest.files() == {}, "nothing may appear at the destination before the job commits"
        r = api.delete(job_id)
        assert r.status_code == 200, r.text
        final = api.wait(job_id, timeout_s=60)
    assert final["state"] == "cancelled" and final["manifest"] is None, final
    # progress only grows; how far the job got before the cancel varies
    assert final["progress"]["bytes"] >= running["progress"]["bytes"], (running, final)
    wait_until(lambda: tree_files(exports.root) == before, timeout_s=30,
               what="no file of the cancelled job left under the export root")
    assert api.delete(job_id).status_code == 409


def test_revocation_stops_a_running_export(exports):
    """Revoking the token of a running export fails the job within a few
    seconds ("revoked"); nothing reaches the destination, no staged file
    is left. The job stays readable by an admin."""
    token = exports.server.create_token(token_body(
        "exp-revoke-running", WIDE_GRANTS, max_sensitivity=3, row_limit=1_000_000_000,
        export_destinations=["file:///revoke"]))
    api, admin = ExportApi(exports.server.http_base, token["secret"]), exports.admin()
    before = tree_files(exports.root)
    dest = exports.dest(f"file:///revoke/{unique('huge')}")
    job_id = api.submit(HUGE_SQL, dest.uri, **HUGE_FIELDS)["id"]
    with cancelled_on_exit(api, [job_id]), cancelled_on_exit(admin, [job_id]):
        wait_running_with_output(api, job_id)
        # revoked once files are staged, so there is something to clean up
        running = wait_until(lambda: (j := api.job(job_id))["progress"]["bytes"] > 0 and j, timeout_s=120,
                             what="the job wrote bytes")
        assert running["state"] == "running", running
        assert tree_files(exports.root) != before, "nothing staged under the export root while running"
        r = exports.server.revoke_token(token["id"])
        assert r.status_code == 200, r.text
        t0 = time.monotonic()
        assert api.get(job_id).status_code == 401, "a revoked token still authenticates"
        final = admin.wait(job_id, timeout_s=60)
        ended_s = time.monotonic() - t0
    print(f"\nrevoked while running ({running['progress']}); job ended after {ended_s:.1f}s: {final['error']}")
    assert final["state"] == "failed", final
    assert "revoked" in (final["error"] or ""), final
    assert final["manifest"] is None and final["summary"] is None, final
    assert ended_s < 10, f"the job ran on for {ended_s:.1f}s after its token was revoked"  # wall clock
    assert dest.files() == {}
    wait_until(lambda: tree_files(exports.root) == before, timeout_s=30,
               what="no staged file of the revoked job left under the export root")
    assert admin.job(job_id) == final, "a failed job no longer changes"


# --- memory --------------------------------------------------------------------------------

def test_local_export_memory_is_bounded(export_mem_env):
    """An export >10x the job's memory_limit (compression none) on a fresh
    gateway: its peak RSS (VmHWM, reset after a warm-up export) grows by
    far less than the export."""
    env = export_mem_env
    api = env.api("big")
    pid = env.server.proc.pid
    warm = wide_cross_join_sql(MEM_REPEAT, MEM_COPIES, limit=2000)  # same plan: code and caches loaded
    api.run(warm, f"file:///mem/{unique('warmup')}", compression="none")
    reset = reset_peak_rss(pid)
    base_hwm, base_rss = proc_status_bytes(pid, "VmHWM"), proc_status_bytes(pid, "VmRSS")
    sql = wide_cross_join_sql(MEM_REPEAT, MEM_COPIES)
    dest = env.dest(f"file:///mem/{unique('big')}")
    try:
        t0 = time.monotonic()
        job = api.run(sql, dest.uri, compression="none", timeout_s=600)
        elapsed = time.monotonic() - t0
        hwm = proc_status_bytes(pid, "VmHWM")
        exp = check_export(env, job, key="big", sql=sql, compression="none", read_rows=False)
    finally:
        shutil.rmtree(dest.path, ignore_errors=True)  # pytest keeps its temp dirs: do not keep ~0.5 GB
    growth = hwm - base_hwm
    row_groups = [meta.row_group(i).total_byte_size for _, meta in exp.parts for i in range(meta.num_row_groups)]
    print(
        f"\nexport {job['bytes'] / MIB:.1f} MiB, {job['rows']} rows, {job['files']} files, "
        f"{len(row_groups)} row groups (largest {max(row_groups) / MIB:.1f} MiB) in {elapsed:.1f}s; "
        f"memory_limit {MEM_LIMIT / MIB:.0f} MiB; gateway VmRSS before {base_rss / MIB:.1f} MiB, "
        f"VmHWM {base_hwm / MIB:.1f} -> {hwm / MIB:.1f} MiB (growth {growth / MIB:.1f} MiB; "
        f"peak {'reset' if reset else 'not reset'} before the export)"
    )
    assert exp.manifest["rows"] == env.query("big", wide_count_sql(MEM_COPIES))["n"][0].as_py()
    # bounds: Parquet sizes and peak RSS vary with batching and the allocator
    assert job["bytes"] >= 10 * MEM_LIMIT, (
        f"export of {job['bytes'] / MIB:.1f} MiB is too small to judge a {MEM_LIMIT / MIB:.0f} MiB limit")
    assert growth < job["bytes"] / 3, (
        f"peak RSS grew {growth / MIB:.1f} MiB for a {job['bytes'] / MIB:.1f} MiB export")


# --- CLI ----------------------------------------------------------------------------------

def _cli_job(exports, res, dest: str) -> dict:
    assert res.returncode == 0, describe(res)
    lines = res.stdout.splitlines()
    m = CLI_SUCCESS.fullmatch(lines[0].strip()) if lines else None
    assert m, f"first stdout line: {describe(res)}"
    job = exports.api("reader").job(m["id"])
    assert (int(m["rows"]), int(m["bytes"]), int(m["files"]), m["dest"]) == (
        job["rows"], job["bytes"], job["files"], dest), (lines[0], job)
    return job


def test_cli_export_waits_and_prints_the_summary(exports):
    secret = exports.tokens["reader"]["secret"]
    dest = f"{ACME_FILE}/{unique('cli')}"
    res = run_cli(exports.server.binary, ["--sql", JOIN_SQL, "--to", dest, "--server", exports.server.http_base,
                                          "--token", secret])
    job = _cli_job(exports, res, dest)
    exp = check_export(exports, job, key="reader", sql=JOIN_SQL)
    for f, _ in exp.parts:
        assert f["path"] in res.stdout, f"the summary lists the files: {res.stdout}"
    assert secret not in res.stdout + res.stderr, "the CLI printed the token"
    assert_same_rows(exp.table, exports.query("reader", JOIN_SQL), "CLI export")


def test_cli_token_from_env_and_options(exports):
    sql = f"SELECT * FROM {ORDERS}"
    dest = f"{ACME_S3}/{unique('cli-env')}"
    res = run_cli(exports.server.binary, ["--sql", sql, "--to", dest, "--server", exports.server.http_base,
                                          "--compression", "snappy", "--max-file-bytes", "65536"],
                  env_token=exports.tokens["reader"]["secret"])
    job = _cli_job(exports, res, dest)
    exp = check_export(exports, job, key="reader", sql=sql, compression="snappy", max_file_bytes=65536)
    # split, into a number of parts that depends on the order of the scan's batches
    assert len(exp.parts) >= 2, exp.manifest["files"]


def test_cli_no_wait_prints_the_job_id(exports):
    dest = f"{ACME_S3}/{unique('cli-nowait')}"
    res = run_cli(exports.server.binary, ["--sql", SMALL_SQL, "--to", dest, "--server", exports.server.http_base,
                                          "--token", exports.tokens["reader"]["secret"], "--no-wait"])
    assert res.returncode == 0, describe(res)
    job_id = res.stdout.strip()
    assert job_id and len(job_id.split()) == 1, describe(res)
    job = exports.api("reader").wait(job_id)
    check_export(exports, job, key="reader", sql=SMALL_SQL)


def test_cli_refused_export_exits_1_with_the_message(exports):
    api = exports.api("reader")
    dest = f"s3://{BUCKET}/other/{unique('cli')}"
    r = api.post(SMALL_SQL, dest)
    assert r.status_code == 403, r.text
    message = error_of(r)
    res = run_cli(exports.server.binary, ["--sql", SMALL_SQL, "--to", dest, "--server", exports.server.http_base,
                                          "--token", exports.tokens["reader"]["secret"]])
    assert res.returncode == 1, describe(res)
    assert message in res.stderr, describe(res)
    assert "succeeded" not in res.stdout, describe(res)


def test_cli_bad_token_exits_1(exports):
    res = run_cli(exports.server.binary, ["--sql", SMALL_SQL, "--to", f"{ACME_S3}/{unique('cli')}",
                                          "--server", exports.server.http_base, "--token", "garbage"])
    assert res.returncode == 1, describe(res)
    assert "authentication failed" in res.stderr, describe(res)


def test_cli_usage_error_exits_2(exports):
    res = run_cli(exports.server.binary, ["--sql", SMALL_SQL, "--server", exports.server.http_base,
                                          "--token", exports.tokens["reader"]["secret"]])
    assert res.returncode == 2, describe(res)
