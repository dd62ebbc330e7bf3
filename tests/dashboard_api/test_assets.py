"""`moldlab assets`: the pages' third-party files from a registry, checked against their pinned
sha512 before anything is unpacked; nothing fetched twice."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from dashboard_api import assets
from dashboard_api.assets import Asset, AssetError


def _tarball(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _registry(tmp_path: Path, package: str, version: str, data: bytes) -> str:
    folder = tmp_path / "registry" / package / "-"
    folder.mkdir(parents=True)
    (folder / f"{package}-{version}.tgz").write_bytes(data)
    return (tmp_path / "registry").as_uri()


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def test_a_checked_tarball_is_unpacked_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _tarball({"package/dist/chart.js": b"chart()", "package/LICENSE": b"MIT"})
    registry = _registry(tmp_path, "chart", "1.0.0", data)
    pinned = Asset("chart", "1.0.0", _integrity(data), {"package/dist/chart.js": "chart.js"})
    monkeypatch.setattr(assets, "ASSETS", (pinned,))
    vendor = tmp_path / "vendor"
    lines: list[str] = []
    assert assets.missing(vendor) == ["chart.js"]
    assert assets.install(vendor, registry=registry, progress=lines.append) == 1
    assert (vendor / "chart.js").read_bytes() == b"chart()"
    assert not (vendor / "LICENSE").exists()  # only the files the pages load
    assert assets.missing(vendor) == []
    assert "checked, unpacked" in lines[-1]
    assert assets.install(vendor, registry=registry, progress=lines.append) == 0
    assert lines[-1].endswith("already installed")


def test_a_tarball_that_is_not_the_pinned_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _tarball({"package/chart.js": b"chart()"})
    evil = _tarball({"package/chart.js": b"steal(document.cookie)"})
    registry = _registry(tmp_path, "chart", "1.0.0", evil)
    monkeypatch.setattr(
        assets, "ASSETS", (Asset("chart", "1.0.0", _integrity(good), {"package/chart.js": "c.js"}),)
    )
    vendor = tmp_path / "vendor"
    with pytest.raises(AssetError, match="not the pinned"):
        assets.install(vendor, registry=registry, progress=lambda _: None)
    assert not (vendor / "c.js").exists()


def test_an_unreachable_registry_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assets, "ASSETS", (Asset("chart", "1.0.0", "sha512-x", {"a": "b"}),))
    with pytest.raises(AssetError, match="cannot download"):
        assets.install(tmp_path, registry=(tmp_path / "none").as_uri(), progress=lambda _: None)


def test_the_installed_files_are_the_pinned_ones() -> None:
    """scripts/test ran `moldlab assets`: the pages' files are there, and no CDN is named."""
    assert assets.missing() == []
    for page in ("kiosk.html", "docs.html", "engineer.html", "login.html"):
        text = (assets.vendor_dir().parent / page).read_text()
        assert "http" not in text.replace("http-equiv", ""), page
