"""The demo's catalogs must work in STAC Browser, the viewer most STAC users open them in, exactly as published:
static files over plain HTTP, relative links, no server-side help. Schema validation alone cannot catch a catalog
that validates but renders wrongly or not at all, so this drives the real viewer in headless Chromium.

STAC Browser's npm package ships sources only, so it is built once with the versions pinned in tests/browser/ and
cached under build/stac-browser/, keyed by those pins (`make browser-assets` does the same ahead of `make test`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PINS = PROJECT_ROOT / "tests" / "browser"
CACHE = PROJECT_ROOT / "build" / "stac-browser"
CHECK_SCRIPT = PINS / "check.mjs"
# Hash mode needs no URL rewriting from the static server; the rest is STAC Browser's default configuration.
BUILD_ENV = {"SB_historyMode": "hash", "SB_noSourceMaps": "true", "NODE_ENV": "production"}
NPM_QUIET = ["--no-audit", "--no-fund", "--loglevel=error", "--ignore-scripts"]
HOW_TO_INSTALL = "install Node.js 20 with npm and Debian's chromium (`make services` installs chromium)"


class BrowserAssetsError(RuntimeError):
    """STAC Browser could not be installed or built; the message says what to fix."""


def cache_key() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((PINS / name).read_bytes())
    digest.update(json.dumps(BUILD_ENV, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _run_quietly(command: list[str], cwd: Path, what: str, env: dict[str, str] | None = None) -> None:
    """npm and webpack print hundreds of lines of deprecation noise; show them only when the step fails."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-4000:]
        raise BrowserAssetsError(f"{what} failed (exit {done.returncode}): {' '.join(command)}\n{tail}")


def ensure_stac_browser() -> Path:
    """The cache folder holding `dist/` (the built STAC Browser) and `node_modules/` (with playwright-core).

    Built in a staging folder and renamed into place only when complete, so an interrupted build is never reused;
    failed builds and builds for other pins are removed, as each holds ~0.5 GB of node_modules."""
    final = CACHE / cache_key()
    if (final / ".complete").is_file():
        return final
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise BrowserAssetsError(f"node or npm is not on PATH: {HOW_TO_INSTALL}")
    CACHE.mkdir(parents=True, exist_ok=True)
    staging = CACHE / f"{final.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _build(staging, node, npm)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for stale in CACHE.iterdir():
        if stale != staging and ".partial-" not in stale.name:
            shutil.rmtree(stale, ignore_errors=True)
    try:
        staging.rename(final)
    except OSError:  # another process finished the same build first
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _build(staging: Path, node: str, npm: str) -> None:
    staging.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(PINS / name, staging / name)
    _run_quietly([npm, "ci", *NPM_QUIET], staging, "npm ci of tests/browser/package-lock.json")
    # STAC Browser's sources refer to `../../node_modules/...`, so they are built as a project of their own whose
    # node_modules is the one npm just installed; that only works while npm hoisted every dependency.
    app = staging / "app"
    shutil.copytree(staging / "node_modules" / "@radiantearth" / "stac-browser", app, symlinks=True)
    if (app / "node_modules").exists():
        raise BrowserAssetsError(
            f"npm installed private dependencies under @radiantearth/stac-browser/node_modules "
            f"({sorted(p.name for p in (app / 'node_modules').iterdir())}): pin matching versions in "
            f"{PINS / 'package.json'} so that they are hoisted"
        )
    (app / "node_modules").symlink_to(Path("..") / "node_modules")
    env = {**os.environ, **BUILD_ENV}
    vue_cli = str(staging / "node_modules" / ".bin" / "vue-cli-service")
    _run_quietly([node, vue_cli, "build", "--dest", str(staging / "dist")], app, "STAC Browser's build", env)
    shutil.rmtree(app)
    (staging / ".complete").write_text(f"{staging.name.split('.')[0]}\n")


class _Handler(SimpleHTTPRequestHandler):
    """Static files for a page on another origin, as a bucket or web server publishing a catalog serves them: with
    CORS and byte ranges, which the browser's COG reader needs to read a GeoTIFF's header and tiles."""

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Expose-Headers", "Content-Range, Content-Length, Accept-Ranges")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "*")
        self.end_headers()

    def do_GET(self) -> None:
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "").strip())
        path = Path(self.translate_path(self.path))
        if wanted is None or not path.is_file():
            super().do_GET()
            return
        data = path.read_bytes()
        start, end = int(wanted[1]), min(int(wanted[2] or len(data) - 1), len(data) - 1)
        if start >= len(data) or start > end:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self.wfile.write(data[start : end + 1])

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """A real HTTP server on loopback for `folder`; yields its base URL (no trailing slash)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def browse(
    assets: Path, demo: Path, child: str, collection: str, item: str, asset_title: str, screenshot: Path
) -> dict[str, Any]:
    """Runs tests/browser/check.mjs against `demo` served over HTTP; returns its report (see that script)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        raise BrowserAssetsError(f"Debian's chromium is not installed: {HOW_TO_INSTALL}")
    node = shutil.which("node")
    if node is None:
        raise BrowserAssetsError(f"node is not on PATH: {HOW_TO_INSTALL}")
    with serve(assets / "dist") as browser_url, serve(demo) as catalog_url:
        config = {
            "modules": str(assets),
            "chromium": chromium,
            "browserUrl": browser_url,
            "catalogUrl": f"{catalog_url}/catalog.json",
            "childHref": f"{catalog_url}/{child}",
            "collectionHref": f"{catalog_url}/{collection}",
            "itemHref": f"{catalog_url}/{item}",
            "assetTitle": asset_title,
            "screenshot": str(screenshot),
        }
        return run_node_script(node, CHECK_SCRIPT, config)


def run_node_script(node: str, script: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Runs a playwright script with its config as the one argument; returns the JSON its last line prints."""
    done = subprocess.run(
        [node, str(script), json.dumps(config)], capture_output=True, text=True, timeout=300, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise AssertionError(f"{script.name} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def _prediction(demo: Path) -> tuple[str, str, str, dict[str, Any]]:
    """The first prediction catalog linked from the root (in a folder named prediction*), the path of the
    collection it holds, its item's path and the item itself."""
    root = json.loads((demo / "catalog.json").read_text())
    children = [link["href"].removeprefix("./") for link in root["links"] if link["rel"] == "child"]
    child = next(href for href in children if Path(href).parent.name.startswith("prediction"))
    catalog = json.loads((demo / child).read_text())
    collection_href = next(link["href"] for link in catalog["links"] if link["rel"] == "child")
    collection = (demo / child).parent / collection_href
    item_href = next(link["href"] for link in json.loads(collection.read_text())["links"] if link["rel"] == "item")
    item = collection.parent / item_href
    relative = [path.resolve().relative_to(demo.resolve()).as_posix() for path in (collection, item)]
    return child, relative[0], relative[1], json.loads(item.read_text())


@pytest.mark.slow
def test_stac_browser_shows_the_demo(tiny_demo: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    demo, _ = tiny_demo
    child, collection, item_path, item = _prediction(demo)
    classes = item["assets"]["classes"]
    legend = [entry["name"] for entry in classes["classification:classes"]]
    try:
        assets = ensure_stac_browser()
        report = browse(assets, demo, child, collection, item_path, classes["title"], tmp_path / "item.png")
    except BrowserAssetsError as error:
        pytest.fail(str(error))
    # Basemap tiles are refused on purpose (no internet in CI); every other console error is ours to explain.
    console = [error for error in report["consoleErrors"] if error["url"] not in report["blockedExternal"]]
    problems = json.dumps({k: report[k] for k in ("failedRequests", "pageErrors") if report[k]} | {"console": console})
    assert "error" not in report, f"stopped at step {report['steps'][-1]}: {report['error']}\n{problems}"
    pages = report["pages"]
    for page in pages.values():
        assert not page["alerts"], f"STAC Browser reported a problem on {page['url']}: {page['alerts']}"
    assert not report["failedRequests"], problems
    assert not report["pageErrors"], problems
    assert not console, problems

    root = json.loads((demo / "catalog.json").read_text())
    assert root["title"] in pages["root"]["heading"], pages["root"]
    children = [link for link in root["links"] if link["rel"] == "child"]
    assert len(pages["root"]["cards"]) == len(children), pages["root"]["cards"]

    shown = pages["item"]
    assert item["id"] in shown["heading"], shown
    assert classes["title"] in shown["assets"], shown["assets"]
    assert any("GeoTIFF" in line for line in shown["expandedAsset"].splitlines()), shown["expandedAsset"]
    missing = [name for name in legend if name not in shown["expandedAsset"]]
    assert not missing, f"legend entries not shown: {missing}\n{shown['expandedAsset']}"
    thumbnail = item["assets"]["thumbnail"]["href"].removeprefix("./")
    previews = [img for img in shown["thumbnails"] if img["src"].endswith(thumbnail)]
    assert previews, shown["thumbnails"]
    assert all(img["width"] > 0 and img["height"] > 0 for img in previews), previews
    # The map reads the COG itself with HTTP range requests; had its reader failed, the console checks above fail.
    cog = f"/{item_path.rsplit('/', 1)[0]}/{classes['href'].removeprefix('./')}"
    assert any(got["url"].endswith(cog) and got["status"] == 206 for got in report["fetched"]), report["fetched"]

    assert (tmp_path / "item.png").stat().st_size > 10_000


if __name__ == "__main__":  # `make browser-assets`: build the cache ahead of the test run
    try:
        print(ensure_stac_browser().relative_to(PROJECT_ROOT))
    except BrowserAssetsError as error:
        sys.exit(str(error))
