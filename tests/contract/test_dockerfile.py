"""The image's build context holds what the package build needs: a folder that pyproject.toml packages but
the Dockerfile does not copy (or .dockerignore hides) fails `make image` minutes in, and only there."""

from __future__ import annotations

import re
import tomllib

from ..conftest import PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / "dockerfiles" / "Dockerfile"


def _packaged_roots() -> set[str]:
    """Top-level folders of the source tree that `package-dir` maps into the distribution."""
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    folders = pyproject["tool"]["setuptools"]["package-dir"].values()
    return {folder.split("/")[0] for folder in folders}


def _copied() -> set[str]:
    """What the build stage copies from the context, as top-level names."""
    sources: set[str] = set()
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"COPY\s+(?!--from)(.+)\s+\S+$", line.strip())
        if match:
            sources.update(word.rstrip("/").split("/")[0] for word in match.group(1).split())
    return sources


def _allowed_by_dockerignore() -> set[str]:
    lines = (PROJECT_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return {line[1:].rstrip("/") for line in lines if line.startswith("!")}


def test_the_image_copies_every_packaged_folder() -> None:
    roots = _packaged_roots()
    assert {"shared", "stages"} <= roots, "the check reads package-dir"
    missing = roots - _copied()
    assert not missing, f"dockerfiles/Dockerfile must COPY {sorted(missing)}: pyproject.toml packages them"
    hidden = roots - _allowed_by_dockerignore()
    assert not hidden, f".dockerignore must let {sorted(hidden)} into the build context"


def test_the_image_copies_the_metadata_the_build_reads() -> None:
    """pyproject.toml names README.md and LICENSE; the lock is the install's constraint."""
    needed = {"pyproject.toml", "constraints.txt", "README.md", "LICENSE"}
    assert needed <= _copied()
    assert needed <= _allowed_by_dockerignore()


def test_the_bookworm_pin_list_is_what_the_lock_needs() -> None:
    """Debian bookworm's Python (the Debian-packages base) is older than the lock's floor for a few packages;
    the list of pins dropped there must follow the lock, read here from the installed distributions' metadata
    (the environment is installed from the lock)."""
    from importlib.metadata import distributions

    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name

    text = (PROJECT_ROOT / "dockerfiles" / "relax-pins-bookworm.txt").read_text(encoding="utf-8")
    python = re.search(r"python (\d+\.\d+\.\d+)", text)
    assert python is not None, "relax-pins-bookworm.txt names the Python version it is for"
    listed = {canonicalize_name(line) for line in text.splitlines() if line.strip() and not line.startswith("#")}
    pins = (line.split("==", 1) for line in (PROJECT_ROOT / "constraints.txt").read_text().splitlines() if "==" in line)
    locked = {canonicalize_name(name): version.strip() for name, version in pins}
    needed = set()
    for dist in distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if locked.get(name) != dist.version or "Requires-Python" not in dist.metadata:
            continue
        if not SpecifierSet(dist.metadata["Requires-Python"]).contains(python.group(1)):
            needed.add(name)
    assert listed == needed, f"dockerfiles/relax-pins-bookworm.txt should list {sorted(needed)}"
