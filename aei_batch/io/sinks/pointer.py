"""The commit pointer: the embedded catalog of an s3:// table, written last with a conditional PUT.

Object stores have no rename and no lock, and a metadata file's presence proves nothing: a writer writes
its `NNNNN-<uuid>.metadata.json` *before* it knows whether its commit wins. So the newest metadata file is
never trusted. The truth is one small object beside them, `<table>/metadata/aei-commit.json`:

    {"format": "aei-commit-pointer/1", "metadata_location": "s3://.../00004-<uuid>.metadata.json", ...}

* Reading the table: GET the pointer, load the metadata file it names (a missing one fails fast).
* Committing: pyiceberg writes the new metadata file through an in-memory sqlite catalog rebuilt from the
  pointer in this process; then the pointer is replaced with `If-Match: <its ETag>` after checking that it
  still names the metadata this commit was based on (the first commit uses `If-None-Match: *`). A lost
  race (HTTP 412, or a pointer naming other metadata) raises pyiceberg's `CommitFailedException`: the
  sink refreshes and re-plans. Nothing the losing writer wrote is ever reachable.
* A process killed anywhere before the PUT leaves the pointer, hence the table, as it was.

The store must honour conditional PUTs (AWS S3 since 2024, MinIO, SeaweedFS); with several writers on a
store that ignores them, use a real catalog (REST, PostgreSQL, Glue: docs/TABLES.md).
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from aei_batch.errors import StorageError
from aei_batch.io import storage

log = logging.getLogger(__name__)

POINTER_NAME = "aei-commit.json"
POINTER_FORMAT = "aei-commit-pointer/1"
_LOST_RACE = ("PreconditionFailed", "412", "ConditionalRequestConflict")
#: One-time migration of a table written before the pointer existed: the metadata file to adopt.
ADOPT_ENV = "AEI_ADOPT_METADATA"
#: How long a table folder holding metadata but no pointer is given to show one: a run creating the table
#: writes its first metadata file, then the pointer; a concurrent first run can look in between.
CREATE_GRACE_S = float(os.environ.get("AEI_POINTER_GRACE_S", "10"))


def pointer_uri(table_location: str) -> str:
    return f"{table_location.rstrip('/')}/metadata/{POINTER_NAME}"


def read_pointer(table_location: str) -> tuple[str, str] | None:
    """(metadata location, ETag) of the pointer, or None when the table was never committed."""
    from botocore.exceptions import ClientError

    bucket, key = storage.split_s3(pointer_uri(table_location))
    try:
        obj = storage.s3_client().get_object(Bucket=bucket, Key=key)
        body = json.loads(obj["Body"].read())
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise storage.classify_s3_error(
            exc, f"reading the table pointer {pointer_uri(table_location)}"
        ) from None
    except ValueError:
        raise _broken(table_location, "is not valid JSON") from None
    except Exception as exc:  # noqa: BLE001 - connection errors and the like
        raise storage.classify_s3_error(
            exc, f"reading the table pointer {pointer_uri(table_location)}"
        ) from None
    location = body.get("metadata_location") if isinstance(body, dict) else None
    if body.get("format") != POINTER_FORMAT or not isinstance(location, str):
        raise _broken(table_location, f"has an unknown format ({str(body)[:200]})")
    return location, str(obj["ETag"])


def _broken(table_location: str, what: str) -> StorageError:
    return StorageError(
        f"the table pointer {pointer_uri(table_location)} {what}",
        hint="restore it from a backup (object versioning) or delete the table folder to start a new table",
    )


def publish(table_location: str, based_on: str | None, new_metadata: str) -> None:
    """Make `new_metadata` the committed state if the pointer still names `based_on` (None: no pointer yet).

    Raises CommitFailedException when another writer published first.
    """
    from botocore.exceptions import ClientError
    from pyiceberg.exceptions import CommitFailedException

    current = read_pointer(table_location)
    if (current[0] if current else None) != based_on:
        raise CommitFailedException(f"{pointer_uri(table_location)} moved on: another writer committed first")
    body = json.dumps(
        {"format": POINTER_FORMAT, "metadata_location": new_metadata, "previous": based_on, "at": time.time()}
    ).encode()
    cond: dict[str, str] = {"IfMatch": current[1]} if current else {"IfNoneMatch": "*"}
    bucket, key = storage.split_s3(pointer_uri(table_location))
    try:
        storage.s3_client().put_object(
            Bucket=bucket, Key=key, Body=body, ContentType="application/json", **cond
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in (
            "PreconditionFailed",
            "412",
            "ConditionalRequestConflict",
        ):
            raise CommitFailedException(f"{pointer_uri(table_location)} changed during the commit") from None
        raise storage.classify_s3_error(exc, f"publishing {pointer_uri(table_location)}") from None
    except Exception as exc:  # noqa: BLE001
        raise storage.classify_s3_error(exc, f"publishing {pointer_uri(table_location)}") from None


def _metadata_files(table_location: str) -> list[str]:
    bucket, key = storage.split_s3(table_location.rstrip("/") + "/metadata/")
    found = []
    try:
        for page in storage.s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            found += [
                f"s3://{bucket}/{o['Key']}"
                for o in page.get("Contents", [])
                if o["Key"].endswith(".metadata.json")
            ]
    except Exception as exc:  # noqa: BLE001
        raise storage.classify_s3_error(exc, f"listing {table_location}/metadata/") from None
    return sorted(found)


def _exists(uri: str) -> bool:
    from botocore.exceptions import ClientError

    bucket, key = storage.split_s3(uri)
    try:
        storage.s3_client().head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return False
        raise storage.classify_s3_error(exc, f"checking {uri}") from None
    return True


def _await_pointer(table_location: str) -> Any:
    """The pointer, once a concurrent creation publishes it; None after CREATE_GRACE_S (a broken table)."""
    deadline = time.monotonic() + CREATE_GRACE_S
    delay = 0.1
    while time.monotonic() < deadline:
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        current = read_pointer(table_location)
        if current is not None:
            return current
        delay = min(delay * 2, 1.0)
    return None


def committed_metadata(table_location: str) -> str | None:
    """The metadata file the pointer names; None for a table never committed. Broken states fail fast."""
    current = read_pointer(table_location)
    if current is None and not os.environ.get(ADOPT_ENV) and _metadata_files(table_location):
        current = _await_pointer(table_location)  # another run may be creating the table right now
    if current is None:
        adopt = os.environ.get(ADOPT_ENV)
        files = _metadata_files(table_location)
        if adopt:
            if adopt not in files:
                raise StorageError(
                    f"{ADOPT_ENV}={adopt} is not a metadata file of {table_location}",
                    hint=f"pick one of: {', '.join(f.rsplit('/', 1)[-1] for f in files[-5:]) or '(none)'}",
                )
            publish(table_location, None, adopt)
            log.warning("adopted %s as the committed state of %s", adopt, table_location)
            return adopt
        if files:
            raise StorageError(
                f"{table_location} holds {len(files)} Iceberg metadata file(s) but no commit pointer "
                f"({POINTER_NAME}); no catalog says which of them was committed",
                hint=f"use the catalog that wrote this table (catalog.uri), or, if it was written by "
                f"aei-batch before the pointer existed, adopt its last committed metadata file once with "
                f"{ADOPT_ENV}=s3://.../NNNNN-<uuid>.metadata.json, or choose another output",
            )
        return None
    location = current[0]
    if not _exists(location):
        raise StorageError(
            f"the table pointer {pointer_uri(table_location)} names {location}, which does not exist "
            "(deleted by hand, or a bucket lifecycle rule)",
            hint="restore that file (object versioning), or delete the table folder to start a new table",
        )
    return location


def sync(catalog: Any, identifier: str, namespace: str, table_location: str) -> str | None:
    """Point this process's in-memory catalog at the committed metadata; returns it (None: no table)."""
    from pyiceberg.exceptions import NoSuchTableError

    location = committed_metadata(table_location)
    try:
        current = catalog.load_table(identifier).metadata_location
    except NoSuchTableError:
        current = None
    if current == location:
        return location
    if current is not None:
        catalog.drop_table(identifier)  # in-memory row only; never data
    if location is not None:
        catalog.create_namespace_if_not_exists(namespace)
        catalog.register_table(identifier, location)
    return location
