"""A cache of built model folders: written atomically, checked by a manifest before every use.

A folder is built under a temporary name next to its final place and renamed when complete,
with ``manifest.json`` written last: it lists every file with its size and SHA-256. A folder
without a manifest, or whose files do not match it (a build that was killed, a disk error, an
edit), is never used: it is removed and built again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

CACHE_VARIABLE = "ADVNLP_CACHE"
MANIFEST = "manifest.json"


def cache_root() -> Path:
    """``$ADVNLP_CACHE`` if set, else ``$XDG_CACHE_HOME/advnlp`` or ``~/.cache/advnlp``."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "advnlp"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def is_complete(folder: Path, options: dict[str, Any]) -> bool:
    """Does ``folder`` hold a whole build with these ``options`` (every checksum matching)?"""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        if manifest.get("options") != options:
            return False
        present = {p.name for p in folder.iterdir()} - {MANIFEST}
        if present != set(files):
            return False
        return all(
            (folder / name).stat().st_size == entry["bytes"]
            and sha256_file(folder / name) == entry["sha256"]
            for name, entry in files.items()
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def cached_folder(folder: Path, options: dict[str, Any], write: Callable[[Path], None]) -> Path:
    """``folder`` if it holds a complete build for ``options``, else built by ``write(tmp)``.

    ``write`` fills an empty temporary folder; the manifest is added and the folder renamed
    into place only when ``write`` returns, so a reader never sees a partial build.
    """
    if is_complete(folder, options):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{folder.name}.building-", dir=folder.parent))
    try:
        write(building)
        _readable_as_umask_allows(building)
        files = {
            p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for p in sorted(building.iterdir())
        }
        manifest = {"options": options, "files": files}
        (building / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if folder.exists():  # incomplete or stale: move it away first (rename is atomic)
            stale = Path(tempfile.mkdtemp(prefix=f".{folder.name}.stale-", dir=folder.parent))
            with contextlib.suppress(FileNotFoundError):  # another process moved it already
                os.replace(folder, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(building, folder)
        except OSError:  # another process renamed its build in first: use that one if whole
            if not is_complete(folder, options):
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return folder


def _readable_as_umask_allows(folder: Path) -> None:
    """mkdtemp makes the folder private (0700) and safetensors its file (0600): use the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for path in folder.iterdir():
        os.chmod(path, 0o666 & ~umask)
