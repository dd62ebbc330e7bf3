"""A small export and a model trained on it, shared by the pdm tests of one session."""

from __future__ import annotations

from pathlib import Path

import pytest
from pdm_exports import small_export, small_model


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_export(tmp_path_factory)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_model(tmp_path_factory)
