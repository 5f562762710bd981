"""`GET /metrics` (Prometheus text): counters move with requests and export
jobs, and no label carries an id, a token id or a secret."""

from __future__ import annotations

import requests

from exports_harness import ACME_FILE, unique
from harness import metric_sum

SMALL_SQL = "SELECT order_id, region FROM lake.sales.orders WHERE order_id < 50"


def _metrics(server) -> str:
    r = requests.get(f"{server.http_base}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    return r.text


def test_requests_and_auth_failures_are_counted(exports):
    server = exports.server
    before = _metrics(server)
    for _ in range(3):
        r = requests.get(f"{server.http_base}/v1/exports", headers={"Authorization": "Bearer nope"}, timeout=10)
        assert r.status_code == 401
    after = _metrics(server)
    key = dict(route="/v1/exports", method="GET", status="401")
    assert metric_sum(after, "sluice_http_requests_total", **key) - metric_sum(before, "sluice_http_requests_total", **key) >= 3
    assert metric_sum(after, "sluice_auth_failures_total", kind="malformed") - \
        metric_sum(before, "sluice_auth_failures_total", kind="malformed") >= 3
    assert metric_sum(after, "sluice_http_request_duration_seconds_count", route="/v1/exports", method="GET") > 0


def test_export_jobs_are_counted_without_ids(exports):
    server = exports.server
    api = exports.api("reader")
    before = _metrics(server)
    job = api.run(SMALL_SQL, f"{ACME_FILE}/{unique('metrics')}")
    assert job["state"] == "succeeded", job
    after = _metrics(server)
    assert metric_sum(after, "sluice_export_jobs_total", state="succeeded") - \
        metric_sum(before, "sluice_export_jobs_total", state="succeeded") >= 1
    assert metric_sum(after, "sluice_export_rows_total") - metric_sum(before, "sluice_export_rows_total") >= job["rows"]
    api.job(job["id"])  # a request whose path holds the job id
    text = _metrics(server)
    token = exports.tokens["reader"]
    for secret in (job["id"], token["id"], token["secret"], "slc_"):
        assert secret not in text, f"/metrics shows {secret!r}"
    assert 'route="/v1/exports/{id}"' in text
