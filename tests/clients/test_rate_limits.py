"""Rate limits through the real clients: a token's ``rate_limit`` (requests
per minute, token bucket) refuses the request after its minute's worth
with HTTP 429 + ``Retry-After`` and Flight ``RESOURCE_EXHAUSTED``, also
under concurrent requests; the pages of a running Trino query are not
charged; a client address that keeps failing authentication is refused
beyond its bucket of failures, while valid secrets keep working."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow.flight as flight
import pytest
import requests

import flight_proto as fp
from harness import FLIGHT_ERRORS, SluiceServer, metric, start_or_fail
from tokens import token_body
from trino_harness import RawTrino

ORDERS = "lake.sales.orders"
FAILURES_PER_MINUTE = 5
LIMITS = f"[limits]\nrate_limit_per_minute = 0\nauth_failures_per_minute = {FAILURES_PER_MINUTE}"


def body(name: str, rate: int) -> dict:
    return token_body(name, [{"table": ORDERS, "columns": ["order_id", "region"]}],
                      max_sensitivity=3, rate_limit=rate)


@pytest.fixture(scope="module")
def limited(sluice_bin, lake, tmp_path_factory):
    srv = start_or_fail(SluiceServer(binary=sluice_bin, workdir=tmp_path_factory.mktemp("limited"), lake=lake,
                                     extra_config=LIMITS))
    yield srv
    srv.close()


def introspect(srv, token: dict) -> requests.Response:
    return requests.get(f"{srv.http_base}/v1/tokens/{token['id']}/introspect", timeout=30,
                        headers={"Authorization": f"Bearer {token['secret']}"})


def test_the_61st_request_of_a_60_per_minute_token_is_refused(limited):
    token = limited.create_token(body("rate-60", 60))
    before = metric(limited, "sluice_rate_limited_total", limit="token")
    start = time.monotonic()
    statuses = []
    for _ in range(70):
        statuses.append(introspect(limited, token))
        if statuses[-1].status_code != 200:
            break
    elapsed = time.monotonic() - start
    refused_at = len(statuses)
    # A full bucket is 60 requests; it refills at one a second meanwhile, so
    # how many more pass depends on how long the requests took (a range).
    assert 61 <= refused_at <= 61 + int(elapsed), (refused_at, elapsed)
    last = statuses[-1]
    assert last.status_code == 429, last.text
    # the wait for the next token: at most a second here, rounded up to whole seconds
    assert int(last.headers["Retry-After"]) >= 1
    assert "too many requests" in last.json()["error"]

    # The same bucket for every protocol.
    trino = RawTrino(limited.http_base, token["secret"])
    page = trino.post(f"SELECT order_id FROM {ORDERS}")
    assert page.status == 429 and int(page.headers["Retry-After"]) >= 1  # (as above)
    client = limited.flight_client()
    try:
        opts = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token['secret']}".encode())],
                                        timeout=30)
        with pytest.raises(FLIGHT_ERRORS) as err:
            fp.statement_info(client, f"SELECT order_id FROM {ORDERS}", opts)
        assert "too many requests" in str(err.value), err.value
    finally:
        client.close()
    # the three refusals above: HTTP, Trino, Flight
    assert metric(limited, "sluice_rate_limited_total", limit="token") - before == 3

    # Another token is not affected.
    assert introspect(limited, limited.create_token(body("rate-60b", 60))).status_code == 200


def test_concurrent_requests_cannot_exceed_the_rate(limited):
    token = limited.create_token(body("rate-30", 30))
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(lambda _: introspect(limited, token).status_code, range(80)))
    elapsed = time.monotonic() - start
    admitted = codes.count(200)
    assert set(codes) <= {200, 429}, codes
    assert codes.count(429) == 80 - admitted
    # 30 at once, plus one every two seconds while the requests ran: a range,
    # as the refills depend on how long the requests took.
    assert 30 <= admitted <= 30 + int(elapsed / 2) + 1, (admitted, elapsed)


def test_pages_of_a_running_trino_query_are_not_charged(limited, lake):
    token = limited.create_token(body("rate-1", 1))
    trino = RawTrino(limited.http_base, token["secret"])
    pages = trino.run(f"SELECT order_id FROM {ORDERS} ORDER BY order_id")
    # the POST and at least one page fetched after it (how the rows split
    # into pages depends on when the batches arrive)
    assert len(pages) >= 2 and not pages[-1].error
    visible = sorted(r["order_id"] for r in lake.sources["sales.orders"].to_pylist() if r["sensitivity"] is not None)
    assert [row[0] for p in pages for row in p.data] == visible
    # The statement used the token's one request of the minute.
    assert trino.post("SELECT 1").status == 429
    # URLs of queries that do not exist are charged like new requests.
    made_up = f"{limited.http_base}/v1/statement/executing/20260101_000000_00000_xxxxx/slug/1"
    assert trino.get(made_up).status == 429
    # Another token using this query's URLs is charged too.
    other = RawTrino(limited.http_base, limited.create_token(body("rate-2", 2))["secret"])
    first = RawTrino(limited.http_base, limited.create_token(body("rate-5", 5))["secret"])
    page = first.post(f"SELECT order_id FROM {ORDERS} ORDER BY order_id")
    assert page.status == 200 and page.next_uri
    live = page.next_uri
    assert [other.get(live).status for _ in range(3)][-1] == 429
    first.delete(live)


def test_an_address_that_keeps_failing_is_refused(limited):
    """Failed authentications beyond the address's bucket are refused as
    rate limited on every protocol; valid secrets from the same address
    keep working (no lock-out of clients sharing an address)."""
    token = limited.create_token(body("neighbour", 1000))
    bad = "Bearer slc_" + "B" * 43
    before = metric(limited, "sluice_rate_limited_total", limit="auth_failures")
    for _ in range(FAILURES_PER_MINUTE):
        r = requests.get(f"{limited.http_base}/v1/tokens", timeout=30, headers={"Authorization": bad})
        assert r.status_code == 401
    r = requests.get(f"{limited.http_base}/v1/tokens", timeout=30, headers={"Authorization": bad})
    assert r.status_code == 429, r.text
    # the wait for the bucket's next failure (12 s at 5 a minute), rounded up:
    # how much of it is left depends on how long the requests took
    assert int(r.headers["Retry-After"]) >= 1
    # The refusal says nothing about the secret.
    assert "authentication" not in r.text and "too many requests" in r.text
    page = RawTrino(limited.http_base, "slc_" + "B" * 43).post("SELECT 1")
    assert page.status == 429
    client = limited.flight_client()
    try:
        opts = flight.FlightCallOptions(headers=[(b"authorization", bad.encode())], timeout=30)
        with pytest.raises(FLIGHT_ERRORS, match="too many requests"):
            fp.statement_info(client, "SELECT 1", opts)
        # A valid secret from the same address is served.
        good = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token['secret']}".encode())],
                                        timeout=30)
        fp.statement_info(client, f"SELECT order_id FROM {ORDERS}", good)
    finally:
        client.close()
    assert introspect(limited, token).status_code == 200
    assert RawTrino(limited.http_base, token["secret"]).post("SELECT 1").status == 200
    # the three refusals above: HTTP, Trino, Flight (the valid secrets are not refused)
    assert metric(limited, "sluice_rate_limited_total", limit="auth_failures") - before == 3
