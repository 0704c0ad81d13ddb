"""A real STAC API (stac-fastapi-pgstac over a throwaway PostgreSQL + PostGIS cluster) on loopback, for tests.

The `search` and `cube` stages talk to STAC APIs over HTTP with paging, so their tests need a server that
behaves like Earth Search or Planetary Computer: the same pgstac search engine, the same `next` tokens, the
same JSON. Everything lives in one temporary folder and is torn down with it; nothing listens beyond
127.0.0.1. Missing system packages fail the session loudly instead of skipping, so a CI run can never pass
by not testing.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pystac
import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_SUPERUSER = "postgres"
DATABASE = "postgres"
INSTALL_HINT = "run `make services` (part of `make test`), which installs postgresql and postgresql-15-postgis-3"

# Links the API derives from where an object sits in it; stored copies would be stale relative hrefs.
INFERRED_RELS = frozenset({"self", "root", "parent", "child", "item", "items", "collection"})

# A throwaway cluster needs no durability: skipping fsync makes initdb, migration and loading much faster.
FAST_UNSAFE_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "40",
}


@dataclass
class StartupTimes:
    """Seconds each phase of the start took, so a slow fixture can be diagnosed from the test that uses it."""

    phases: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.phases.values())


@dataclass(frozen=True)
class StacApi:
    """A running API: its root URL, where its logs are, and how long it took to start."""

    url: str
    workdir: Path
    times: StartupTimes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class _RunAs:
    """Who runs the PostgreSQL binaries: they refuse to run as root, and sessions and CI run as root."""

    uid: int | None
    gid: int | None

    def kwargs(self) -> dict[str, Any]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def own(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)


def _postgres_identity() -> _RunAs:
    if os.geteuid() != 0:
        return _RunAs(None, None)
    try:
        entry = pwd.getpwnam(PG_SUPERUSER)
    except KeyError:
        pytest.fail(f"the `{PG_SUPERUSER}` OS user does not exist, so PostgreSQL cannot run as root: {INSTALL_HINT}")
    return _RunAs(entry.pw_uid, entry.pw_gid)


def _require_postgres() -> None:
    for binary in ("initdb", "pg_ctl", "postgres", "pg_config"):
        if not (PG_BIN / binary).is_file():
            pytest.fail(f"PostgreSQL 15 is not installed ({PG_BIN / binary} is missing): {INSTALL_HINT}")
    sharedir = subprocess.run(
        [str(PG_BIN / "pg_config"), "--sharedir"], check=True, capture_output=True, text=True
    ).stdout.strip()
    if not (Path(sharedir) / "extension" / "postgis.control").is_file():
        pytest.fail(f"postgresql-15-postgis-3 is not installed (no postgis.control in {sharedir}): {INSTALL_HINT}")


def _require_python_packages() -> None:
    for module, distribution in (
        ("pypgstac.migrate", "pypgstac[psycopg]"),
        ("stac_fastapi.pgstac.app", "stac-fastapi-pgstac"),
        ("uvicorn", "uvicorn"),
    ):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            pytest.fail(
                f"{distribution} is not installed in {sys.prefix}: run `make install-dev` (part of `make test`)"
            )


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _run_pg(args: Sequence[str], run_as: _RunAs, cwd: Path, what: str, log: Path | None = None) -> None:
    result = subprocess.run(
        list(args), cwd=cwd, capture_output=True, text=True, check=False, timeout=120, **run_as.kwargs()
    )
    if result.returncode != 0:
        detail = f"\n--- {log.name} ---\n{_tail(log)}" if log else ""
        pytest.fail(f"{what} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}{detail}")


@contextmanager
def _postgres_cluster(workdir: Path, times: StartupTimes) -> Iterator[str]:
    """Start a PostgreSQL cluster in workdir (loopback TCP only) and yield its DSN; stop it on exit."""
    run_as = _postgres_identity()
    start = time.perf_counter()
    pgroot = workdir / "postgres"
    pgroot.mkdir()
    run_as.own(pgroot)
    data, sockets, log = pgroot / "data", pgroot / "sockets", pgroot / "postgres.log"
    password = secrets.token_urlsafe(16)
    pwfile = pgroot / "pwfile"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    run_as.own(pwfile)
    _run_pg(
        [
            str(PG_BIN / "initdb"),
            "--pgdata",
            str(data),
            "--username",
            PG_SUPERUSER,
            "--pwfile",
            str(pwfile),
            "--auth-local=peer",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
            "--no-instructions",
        ],
        run_as,
        pgroot,
        "initdb",
    )
    pwfile.unlink()
    sockets.mkdir(mode=0o700)
    run_as.own(sockets)
    port = free_port()
    settings = {
        **FAST_UNSAFE_SETTINGS,
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": f"'{sockets}'",
    }
    with (data / "postgresql.conf").open("a") as conf:
        conf.write("\n# deep-lulc test cluster\n")
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
    times.phases["initdb"] = time.perf_counter() - start

    start = time.perf_counter()
    pg_ctl = str(PG_BIN / "pg_ctl")
    _run_pg([pg_ctl, "--pgdata", str(data), "--log", str(log), "--wait", "start"], run_as, pgroot, "pg_ctl start", log)
    times.phases["postgres start"] = time.perf_counter() - start
    try:
        yield f"postgresql://{PG_SUPERUSER}:{password}@127.0.0.1:{port}/{DATABASE}"
    finally:
        stopped = subprocess.run(
            [pg_ctl, "--pgdata", str(data), "--mode", "fast", "--wait", "stop"],
            cwd=pgroot,
            capture_output=True,
            check=False,
            timeout=60,
            **run_as.kwargs(),
        )
        if stopped.returncode != 0:
            subprocess.run(
                [pg_ctl, "--pgdata", str(data), "--mode", "immediate", "stop"],
                cwd=pgroot,
                capture_output=True,
                check=False,
                timeout=60,
                **run_as.kwargs(),
            )


def _absolute_dict(stac_object: pystac.Item | pystac.Collection) -> dict[str, Any]:
    """The object as the API should serve it: asset and link hrefs absolute, so clients can open the files."""
    as_dict = stac_object.to_dict(include_self_link=False, transform_hrefs=False)
    links = []
    for link in stac_object.links:
        if link.rel in INFERRED_RELS:
            continue
        entry = link.to_dict(transform_href=False)
        entry["href"] = link.get_absolute_href() or link.href
        links.append(entry)
    as_dict["links"] = links
    for key, asset in stac_object.assets.items():
        href = asset.get_absolute_href() or asset.href
        if "://" not in href:  # a model's source code and container are URLs already
            # file:// URIs: a bare absolute path would resolve against the API's http:// self link.
            as_dict["assets"][key]["href"] = Path(href).as_uri()
    return as_dict


def _read_collections(
    catalog: str | Path, collection_ids: Sequence[str]
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    href = Path(catalog)
    if href.is_dir():
        href = href / "catalog.json"
    root = pystac.read_file(str(href.resolve()))
    if not isinstance(root, pystac.Catalog):
        pytest.fail(f"{href} is not a STAC catalog or collection")
    loaded = []
    for collection_id in collection_ids:
        # A stage's output is a catalog holding a collection of the same id: look past the catalog.
        is_root = isinstance(root, pystac.Collection) and root.id == collection_id
        collection = root if is_root else root.get_child(collection_id)
        if not isinstance(collection, pystac.Collection):
            pytest.fail(f"collection {collection_id!r} is not a child of {href}")
        items = [_absolute_dict(item) for item in collection.get_items(recursive=True)]
        loaded.append((_absolute_dict(collection), items))
    return loaded


def _migrate_and_load(dsn: str, collections: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> None:
    # Imported here: pypgstac reads its pool settings at import, and only sessions that start the API need it.
    from pypgstac.db import PgstacDB
    from pypgstac.migrate import Migrate

    db = PgstacDB(dsn=dsn)
    try:
        Migrate(db).run_migration()
        _load(db, collections)
    finally:
        db.disconnect()
        db.close()


def _load(db: Any, collections: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> None:
    from pypgstac.load import Loader, Methods

    loader = Loader(db=db)
    for collection, items in collections:
        loader.load_collections(iter([collection]), insert_mode=Methods.insert)
        loader.load_items(iter(items), insert_mode=Methods.insert)


# Root URL of each running API -> the DSN of its database, for `loaded_into`.
_DSNS: dict[str, str] = {}


@contextmanager
def loaded_into(api_url: str, catalog: str | Path, collection_ids: Sequence[str]) -> Iterator[None]:
    """Add collections of another static catalog, with their items, to the API running at `api_url` (started by
    `stac_api_server` in this process); they are deleted again on exit, so a server shared by a whole session
    goes on serving exactly what its other tests expect."""
    from pypgstac.db import PgstacDB

    if api_url not in _DSNS:
        pytest.fail(f"no STAC API started by stac_api_server runs at {api_url}")
    collections = _read_collections(catalog, collection_ids)
    db = PgstacDB(dsn=_DSNS[api_url])
    try:
        _load(db, collections)
        yield
    finally:
        for collection, _ in collections:  # pgstac deletes a collection's items with it
            db.query_one("SELECT delete_collection(%s)", [collection["id"]])
        db.disconnect()
        db.close()


def _dsn_environment(dsn: str) -> dict[str, str]:
    """The PG* variables stac-fastapi-pgstac reads (it takes no DSN)."""
    parts = urlsplit(dsn)
    return {
        "PGUSER": parts.username or "",
        "PGPASSWORD": parts.password or "",
        "PGHOST": parts.hostname or "",
        "PGPORT": str(parts.port),
        "PGDATABASE": parts.path.lstrip("/"),
    }


def _api_environment(dsn_parts: Mapping[str, str], workdir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PG", "POSTGRES_", "DB_", "ENABLED_EXTENSIONS", "STAC_FASTAPI_"))
    }
    env.update(dsn_parts)
    env.update(
        {
            # Every extension on, as on Earth Search / Planetary Computer (sort, fields, query, filter, ...).
            "STAC_FASTAPI_TITLE": "deep-lulc test STAC API",
            "STAC_FASTAPI_DESCRIPTION": "pgstac over a throwaway loopback cluster, started by the test session",
            "STAC_FASTAPI_VERSION": "0.0.0-test",
            "STAC_FASTAPI_LANDING_ID": "deep-lulc-test",
            "DB_MIN_CONN_SIZE": "1",
            "DB_MAX_CONN_SIZE": "4",
            "HOME": str(workdir),
        }
    )
    return env


@contextmanager
def _uvicorn(
    dsn_parts: Mapping[str, str], workdir: Path, times: StartupTimes
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """Start stac-fastapi-pgstac under uvicorn on a free loopback port; stop it on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "stac-api.log"
    start = time.perf_counter()
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "stac_fastapi.pgstac.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            # Its settings also read a `.env` in the working folder: run where there is none.
            cwd=workdir,
            env=_api_environment(dsn_parts, workdir),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    times.phases["uvicorn spawn"] = time.perf_counter() - start
    try:
        yield url, process, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def _wait_for_api(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if process.poll() is not None:
            pytest.fail(f"the STAC API (stac-fastapi-pgstac) exited with {process.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(
                f"the STAC API (stac-fastapi-pgstac) did not answer on {url}/ within {timeout:.0f} s:\n{_tail(log)}"
            )
        time.sleep(0.1)


@contextmanager
def stac_api_server(catalog: str | Path, collection_ids: Sequence[str] = ("sentinel-2-l2a",)) -> Iterator[StacApi]:
    """Serve collections of a static catalog through a real STAC API on loopback; yields it while it runs.

    `catalog` is a catalog.json (or its folder) on disk; each of `collection_ids` is loaded with its items.
    Asset hrefs become absolute file paths, so a client reading items from the API can open the COGs.
    Page size is whatever the client asks for (`limit`, 1 to 10,000; 10 when absent).
    """
    _require_python_packages()
    _require_postgres()
    times = StartupTimes()
    start = time.perf_counter()
    collections = _read_collections(catalog, collection_ids)
    times.phases["read catalog"] = time.perf_counter() - start
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="deep-lulc-stac-api-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        # The postgres user must reach its folders inside; nobody needs to list this one.
        workdir.chmod(0o711)
        dsn = stack.enter_context(_postgres_cluster(workdir, times))
        parts = _dsn_environment(dsn)
        # The server imports for a second or two: let it do so while the database is filled.
        url, process, log = stack.enter_context(_uvicorn(parts, workdir, times))
        start = time.perf_counter()
        _migrate_and_load(dsn, collections)
        times.phases["migrate + load"] = time.perf_counter() - start
        start = time.perf_counter()
        _wait_for_api(url, process, log)
        times.phases["wait for API"] = time.perf_counter() - start
        _DSNS[url] = dsn
        stack.callback(_DSNS.pop, url, None)
        yield StacApi(url=url, workdir=workdir, times=times)
