"""The pages' third-party files, fetched from the npm registry at install time, never committed.

The kiosk's and the workspace's charts use uPlot (fast with months of points: it draws on a
canvas, 150,000 points in well under a second); /docs uses Swagger UI. `moldlab assets`
downloads the pinned tarballs of ASSETS, checks each against its pinned sha512 (npm's
`integrity`), and unpacks only the files the pages load into `dashboard_api/static/vendor/`,
from where the API serves them: the pages then need no internet, and no CDN ever. It runs
in `scripts/demo`, `scripts/test` and the Dockerfile; a registry mirror is given with
MOLDLAB_NPM_REGISTRY (default https://registry.npmjs.org).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

REGISTRY_ENV = "MOLDLAB_NPM_REGISTRY"
DEFAULT_REGISTRY = "https://registry.npmjs.org"
_STAMP = "assets.json"
_TIMEOUT_S = 60
_MAX_TARBALL = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Asset:
    package: str
    version: str
    integrity: str  # npm's "sha512-<base64>" of the tarball
    files: dict[str, str]  # member of the tarball -> file name in the vendor folder

    def tarball(self, registry: str) -> str:
        return f"{registry.rstrip('/')}/{self.package}/-/{self.package}-{self.version}.tgz"


ASSETS = (
    Asset(
        "uplot",
        "1.6.32",
        "sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
        {
            "package/dist/uPlot.iife.min.js": "uPlot.iife.min.js",
            "package/dist/uPlot.min.css": "uPlot.min.css",
            "package/LICENSE": "uPlot.LICENSE.txt",
        },
    ),
    Asset(
        "swagger-ui-dist",
        "5.35.0",
        "sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==",
        {
            "package/swagger-ui-bundle.js": "swagger-ui-bundle.js",
            "package/swagger-ui.css": "swagger-ui.css",
            "package/favicon-32x32.png": "swagger-favicon.png",
            "package/LICENSE": "swagger-ui.LICENSE.txt",
        },
    ),
)


class AssetError(Exception):
    """A download failed or did not match its pinned checksum (one line, for the user)."""


def vendor_dir() -> Path:
    return Path(str(files("dashboard_api") / "static" / "vendor"))


def missing(folder: Path | None = None) -> list[str]:
    """The vendor files the pages need that are not installed (empty: all there)."""
    folder = folder or vendor_dir()
    return [
        name for a in ASSETS for name in a.files.values() if not (folder / name).is_file()
    ]  # fmt: skip


def _installed(folder: Path) -> dict[str, str]:
    try:
        stamp = json.loads((folder / _STAMP).read_text())
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def _check(asset: Asset, data: bytes) -> None:
    algorithm, _, expected = asset.integrity.partition("-")
    got = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if got != expected:
        raise AssetError(
            f"{asset.package} {asset.version}: the tarball's {algorithm} is {got[:16]}..., "
            f"not the pinned {expected[:16]}...: refusing it (a wrong mirror, or tampered)"
        )


def _download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as answer:
            data: bytes = answer.read(_MAX_TARBALL + 1)
    except OSError as exc:
        raise AssetError(f"cannot download {url}: {exc}") from exc
    if len(data) > _MAX_TARBALL:
        raise AssetError(f"{url} is larger than {_MAX_TARBALL // 2**20} MiB: refusing it")
    return data


def install(
    folder: Path | None = None,
    *,
    registry: str | None = None,
    progress: Callable[[str], None] = print,
) -> int:
    """Download and unpack what is missing or outdated; returns how many packages it fetched."""
    folder = folder or vendor_dir()
    registry = registry or os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY
    folder.mkdir(parents=True, exist_ok=True)
    stamp = _installed(folder)
    fetched = 0
    for asset in ASSETS:
        there = all((folder / name).is_file() for name in asset.files.values())
        if there and stamp.get(asset.package) == asset.integrity:
            progress(f"==> {asset.package} {asset.version}: already installed")
            continue
        url = asset.tarball(registry)
        progress(f"==> {asset.package} {asset.version}: downloading {url}")
        data = _download(url)
        _check(asset, data)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member, name in asset.files.items():
                try:
                    extracted = tar.extractfile(member)
                except KeyError:
                    extracted = None
                if extracted is None:
                    raise AssetError(f"{asset.package} {asset.version} has no {member}")
                temporary = folder / f".{name}.part"
                temporary.write_bytes(extracted.read())
                temporary.replace(folder / name)
        stamp[asset.package] = asset.integrity
        (folder / _STAMP).write_text(json.dumps(stamp, indent=1) + "\n")
        progress(f"==> {asset.package} {asset.version}: {len(data) // 1024} KiB, checked, unpacked")
        fetched += 1
    return fetched
