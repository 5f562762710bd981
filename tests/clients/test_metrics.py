"""`GET /metrics` (Prometheus text): counters move by exactly one per
request and per export job, and no label carries an id, a token id or a
secret. (Nothing else talks to the export gateway while a test runs: the
``exports`` fixture starts each test with no live job.)"""

from __future__ import annotations

import requests

import lake_counts
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
    def moved(name, **labels):
        return metric_sum(after, name, **labels) - metric_sum(before, name, **labels)

    assert moved("sluice_http_requests_total", route="/v1/exports", method="GET", status="401") == 3
    assert moved("sluice_auth_failures_total", kind="malformed") == 3
    assert moved("sluice_http_request_duration_seconds_count", route="/v1/exports", method="GET") == 3


def test_export_jobs_are_counted_without_ids(exports):
    server = exports.server
    api = exports.api("reader")
    before = _metrics(server)
    job = api.run(SMALL_SQL, f"{ACME_FILE}/{unique('metrics')}")
    assert job["state"] == "succeeded", job
    after = _metrics(server)
    assert job["rows"] == lake_counts.READER_ID_LT_50
    assert metric_sum(after, "sluice_export_jobs_total", state="succeeded") - \
        metric_sum(before, "sluice_export_jobs_total", state="succeeded") == 1
    assert metric_sum(after, "sluice_export_rows_total") - metric_sum(before, "sluice_export_rows_total") == job["rows"]
    api.job(job["id"])  # a request whose path holds the job id
    text = _metrics(server)
    token = exports.tokens["reader"]
    for secret in (job["id"], token["id"], token["secret"], "slc_"):
        assert secret not in text, f"/metrics shows {secret!r}"
    assert 'route="/v1/exports/{id}"' in text
