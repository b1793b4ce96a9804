"""The SeaweedFS test server (tests/support/seaweed.py) behaves like the S3 the pipeline will meet."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from tests.support.seaweed import SeaweedS3, find_weed

pytestmark = pytest.mark.s3

AWKWARD_KEYS = [
    "with space/file name.wav",
    "unicode/Ünïcødé-音声-😀.wav",
    "plus/a+b+c.wav",
    "percent/100%25%.wav",
    "hash/take#2.wav",
    "mixed/a b+c%d#e?f=g&h.wav",
    "deep/a/b/c/d/e/f.wav",
]


def _put_many(client, bucket: str, keys: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys))


def _listening_ports(pid: int) -> set[int]:
    """TCP ports that process ``pid`` listens on (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a connection closed while we looked
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # state 0A = LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_list_pages_over_1100_keys_with_etag_and_size(s3_env: SeaweedS3, s3_bucket: str) -> None:
    client = s3_env.client()
    keys = [f"many/{i:05d}.bin" for i in range(1100)]
    _put_many(client, s3_bucket, keys)

    pages = list(
        client.get_paginator("list_objects_v2").paginate(
            Bucket=s3_bucket, Prefix="many/", PaginationConfig={"PageSize": 250}
        )
    )
    listed = [obj for page in pages for obj in page.get("Contents", [])]

    assert len(pages) == 5
    assert [o["Key"] for o in listed] == keys
    for obj in listed[::100]:
        assert obj["Size"] == len(obj["Key"].encode())
        assert obj["ETag"].strip('"') == hashlib.md5(obj["Key"].encode()).hexdigest()


def test_awkward_keys_round_trip(s3_env: SeaweedS3, s3_bucket: str) -> None:
    client = s3_env.client()
    _put_many(client, s3_bucket, AWKWARD_KEYS)

    listed = client.list_objects_v2(Bucket=s3_bucket)["Contents"]

    assert sorted(o["Key"] for o in listed) == sorted(AWKWARD_KEYS)
    for obj in listed:
        body = client.get_object(Bucket=s3_bucket, Key=obj["Key"])["Body"].read()
        assert body == obj["Key"].encode()


def test_env_alone_points_boto3_and_pyarrow_at_server(s3_env: SeaweedS3, s3_bucket: str) -> None:
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="env.txt", Body=b"via env")

    fs, path = pafs.FileSystem.from_uri(f"s3://{s3_bucket}/env.txt")
    with fs.open_input_stream(path) as f:
        assert f.read() == b"via env"


def test_wrong_secret_is_rejected(s3_server: SeaweedS3) -> None:
    with pytest.raises(ClientError) as err:
        s3_server.client(secret_key="not-the-secret", retries={"max_attempts": 1}).list_buckets()

    assert err.value.response["Error"]["Code"] in {
        "SignatureDoesNotMatch",
        "AccessDenied",
        "InvalidAccessKeyId",
    }


def test_pyarrow_s3filesystem_writes_and_reads_parquet(s3_server: SeaweedS3, s3_bucket: str) -> None:
    fs = pafs.S3FileSystem(
        endpoint_override=s3_server.endpoint_url.removeprefix("http://"),
        scheme="http",
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        region="us-east-1",
    )
    table = pa.table({"file": ["a.wav", "b.mp4"], "score": [0.25, 0.75]})

    pq.write_table(table, f"{s3_bucket}/tables/scores.parquet", filesystem=fs)

    assert pq.read_table(f"{s3_bucket}/tables/scores.parquet", filesystem=fs).equals(table)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_server_listens_only_on_its_chosen_ports(s3_server: SeaweedS3) -> None:
    assert s3_server.pid is not None and s3_server.ports is not None

    listening = _listening_ports(s3_server.pid)

    assert listening == set(s3_server.ports.all())
    assert 9101 not in listening


@pytest.mark.skipif(find_weed() is None, reason="SeaweedFS 'weed' binary not found")
def test_stop_then_start_keeps_objects(tmp_path: Path) -> None:
    with SeaweedS3(tmp_path / "data") as server:
        bucket = server.create_bucket("keep-me")
        server.client().put_object(Bucket=bucket, Key="a b/c.txt", Body=b"persist")
        endpoint, pid = server.endpoint_url, server.pid
        assert server.ports is not None

        server.stop()
        assert not server.running
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.ports.s3), timeout=1).close()

        server.start()
        assert server.endpoint_url == endpoint and server.pid != pid
        assert server.client().get_object(Bucket=bucket, Key="a b/c.txt")["Body"].read() == b"persist"

        server.restart()
        keys = [o["Key"] for o in server.client().list_objects_v2(Bucket=bucket)["Contents"]]
        assert keys == ["a b/c.txt"]
    assert not server.running
    assert (tmp_path / "data" / "weed.log").exists()  # a given data dir is kept
