"""The S3 test infrastructure on its own (no sluice needed): moto's server
through boto3 and pyarrow, open multipart uploads, and a TcpProxy in front
of moto that pauses or cuts the connection while moto keeps its state —
what test_exports.py relies on to judge the gateway."""

from __future__ import annotations

import io
import time

import boto3
import botocore.config
import botocore.exceptions
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from exports_harness import S3Dest, tree_files
from s3_harness import ACCESS_KEY, REGION, SECRET_KEY, MotoServer
from tcp_proxy import TcpProxy

MIB = 1024 * 1024


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def _client_via(endpoint: str, read_timeout: float = 2.0):
    """A boto3 client of ``endpoint`` that fails fast (no retries)."""
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=botocore.config.Config(s3={"addressing_style": "path"}, connect_timeout=2,
                                      read_timeout=read_timeout, retries={"max_attempts": 1}),
    )


@pytest.fixture
def s3(moto, request):
    """The direct client and a bucket of this test's own."""
    client = moto.client()
    bucket = "h-" + request.node.name.lower().replace("_", "-")[:50]
    client.create_bucket(bucket)
    yield client, bucket
    client.empty_bucket(bucket)


def test_moto_answers_and_stops(tmp_path):
    srv = MotoServer(log_path=tmp_path / "moto.log").start()
    pid = srv.proc.pid
    assert requests.get(srv.endpoint + "/", timeout=5).status_code == 200
    srv.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(srv.endpoint + "/", timeout=2)
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)


def test_objects_below_a_prefix(s3):
    client, bucket = s3
    for key in ["acme/q1/part-00000.parquet", "acme/q1/_manifest.json", "acme/q10/x", "acme-evil/q1/x", "top"]:
        client.put(bucket, key, b"data-" + key.encode())
    assert client.objects_below(bucket, "acme/q1") == {
        "part-00000.parquet": len(b"data-acme/q1/part-00000.parquet"),
        "_manifest.json": len(b"data-acme/q1/_manifest.json"),
    }
    assert set(client.objects_below(bucket, "acme")) == {"q1/part-00000.parquet", "q1/_manifest.json", "q10/x"}
    assert client.get(bucket, "top") == b"data-top"
    assert S3Dest(client, bucket, "acme/q1").read("_manifest.json") == b"data-acme/q1/_manifest.json"


def test_parquet_read_back_both_ways(s3):
    client, bucket = s3
    t1 = pa.table({"a": pa.array([1, 2, 3], pa.int64()), "s": ["x", None, "ü"]})
    t2 = pa.table({"a": pa.array([4], pa.int64()), "s": ["y"]})
    client.put(bucket, "d/part-00000.parquet", _parquet(t1))
    client.put(bucket, "d/part-00001.parquet", _parquet(t2))
    client.put(bucket, "d/_manifest.json", b"{}")
    assert client.read_parquet(bucket, "d/part-00000.parquet").equals(t1)
    assert client.parquet_file(bucket, "d/part-00001.parquet").metadata.num_rows == 1
    # pyarrow's own S3 client (S3FileSystem) skips _manifest.json
    ds = client.read_dataset(bucket, "d").sort_by("a")
    assert ds.equals(pa.concat_tables([t1, t2]))


def test_open_multipart_uploads_listed_until_aborted(s3):
    client, bucket = s3
    b = client.boto
    up = b.create_multipart_upload(Bucket=bucket, Key="stage/x/part-00000.parquet")
    b.upload_part(Bucket=bucket, Key="stage/x/part-00000.parquet", UploadId=up["UploadId"], PartNumber=1,
                  Body=b"p" * (5 * MIB))
    other = b.create_multipart_upload(Bucket=bucket, Key="elsewhere/y")
    assert [(u["Key"], u["Parts"]) for u in client.multipart_uploads(bucket, "stage/")] == [
        ("stage/x/part-00000.parquet", 1)]
    assert client.state(bucket) == {"objects": {}, "uploads": ["elsewhere/y", "stage/x/part-00000.parquet"]}
    b.abort_multipart_upload(Bucket=bucket, Key="elsewhere/y", UploadId=other["UploadId"])
    b.abort_multipart_upload(Bucket=bucket, Key="stage/x/part-00000.parquet", UploadId=up["UploadId"])
    assert client.state(bucket) == {"objects": {}, "uploads": []}


def test_empty_bucket_removes_objects_and_uploads(s3):
    client, bucket = s3
    client.put(bucket, "a/b", b"1")
    client.boto.create_multipart_upload(Bucket=bucket, Key="a/c")
    assert client.state(bucket) == {"objects": {"a/b": 1}, "uploads": ["a/c"]}
    client.empty_bucket(bucket)
    assert client.state(bucket) == {"objects": {}, "uploads": []}


def test_proxy_pause_and_cut_keep_moto_state(moto, s3):
    """Through the proxy: uploads work; paused, a request hangs; cut, it is
    refused; either way moto keeps the open upload, which the direct client
    still sees; restored, the same upload can be finished through the proxy."""
    client, bucket = s3
    proxy = TcpProxy(moto.address).start()
    try:
        via = _client_via(proxy.uri)
        key = "big/part-00000.parquet"
        up = via.create_multipart_upload(Bucket=bucket, Key=key)
        e1 = via.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=1, Body=b"a" * (5 * MIB))

        proxy.pause()
        t0 = time.monotonic()
        with pytest.raises((botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectionError)):
            via.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=2, Body=b"b" * 1024)
        # wall clock: held until the client's read timeout, not refused at once
        assert time.monotonic() - t0 >= 1.5, "a paused proxy must hold the request, not refuse it"
        assert client.multipart_uploads(bucket) == [{"Key": key, "UploadId": up["UploadId"], "Parts": 1}]

        proxy.close()
        t0 = time.monotonic()
        with pytest.raises(botocore.exceptions.ConnectionError):
            via.list_objects_v2(Bucket=bucket)
        assert time.monotonic() - t0 < 1.5, "a closed proxy must refuse at once"  # wall clock
        assert client.multipart_uploads(bucket)[0]["UploadId"] == up["UploadId"]

        proxy.forward()
        e2 = via.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=2, Body=b"b" * 1024)
        via.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"], MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1["ETag"]}, {"PartNumber": 2, "ETag": e2["ETag"]}]})
        assert client.state(bucket) == {"objects": {key: 5 * MIB + 1024}, "uploads": []}
    finally:
        proxy.stop()


def test_tree_files(tmp_path):
    assert tree_files(tmp_path / "absent") == {}
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "f.parquet").write_bytes(b"123")
    (tmp_path / "g").write_bytes(b"")
    assert tree_files(tmp_path) == {"d/e/f.parquet": 3, "g": 0}
