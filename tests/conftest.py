"""Shared fixtures: a tiny hand-written corpus and the deterministic hashing embedder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from regional_chat.embedding import HashingEmbedder
from regional_chat.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "corpus" / "kazakhstan-un-preventive-diplomacy-unrcca-meeting.txt"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A writable copy of tests/fixtures/corpus (3 files, 4 documents)."""
    target = tmp_path / "corpus"
    shutil.copytree(FIXTURES / "corpus", target)
    return target


@pytest.fixture
def settings() -> Settings:
    return Settings(model="hashing:64", chunk_tokens=40, chunk_overlap=1)


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder(64)


def shared_data(name: str) -> Path:
    """A file of ../shared/data, or skip the test with a clear message when it is absent."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is not here (the evaluation data lives beside the project in ../shared/data)")
    return path
