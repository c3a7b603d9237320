"""Shared fixtures: a tiny hand-written corpus and the deterministic hashing embedder."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import hashlib
import time
from pathlib import Path

import pytest

from regional_chat.embedding import HashingEmbedder
from regional_chat.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "corpus" / "kazakhstan-un-preventive-diplomacy-unrcca-meeting.txt"
SHARED_DATA = ROOT.parent / "shared" / "data"


FAST_TEST_SECONDS = 300  # a test with the fake embedder takes seconds; one stuck on a lock or a socket fails, not hangs CI
SLOW_TEST_SECONDS = 900  # a real model, a browser or a Milvus server; the longest measured take 2-4 minutes


def pytest_collection_modifyitems(config, items):
    """Every test gets a time limit (pytest-timeout): its own ``@pytest.mark.timeout``, else by its marker."""
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(SLOW_TEST_SECONDS if item.get_closest_marker("slow") else FAST_TEST_SECONDS))


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


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from regional_chat.embedding import HashingEmbedder
    from regional_chat.build import build_index
    from regional_chat.settings import Settings

    class SlowEmbedder(HashingEmbedder):
        def embed_passages(self, texts):
            time.sleep(float(sys.argv[3]))  # long enough for the parent to kill us mid-way
            return super().embed_passages(texts)

    def progress(done, total):
        print(f"progress {done} {total}", flush=True)

    build_index(sys.argv[1], sys.argv[2], Settings(model="hashing:64", chunk_tokens=40, chunk_overlap=1, embed_buffer=8),
                embedder=SlowEmbedder(64), on_progress=progress, warn=lambda m: None)
    print("finished", flush=True)
    """
)


def kill_build_midway(corpus: Path, location: str | Path, tmp_path: Path, *, pause: float, seconds: float) -> int:
    """Build ``corpus`` into ``location`` in another process and kill -9 it once half the documents are embedded.

    Returns how many documents it had embedded when killed (the test fails when it finished first).
    """
    script = tmp_path / "kill_me.py"
    script.write_text(_KILL_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(corpus), str(location), str(pause)], stdout=subprocess.PIPE, text=True)
    killed_at, deadline = None, time.time() + seconds
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("progress"):
            done, total = map(int, line.split()[1:])
            if done >= total // 2:
                proc.send_signal(signal.SIGKILL)
                killed_at = done
                break
        assert time.time() < deadline
    proc.wait()
    assert killed_at is not None and proc.returncode == -signal.SIGKILL
    return killed_at


def shared_data(name: str) -> Path:
    """A file of ../shared/data, or skip the test with a clear message when it is absent."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is not here (the evaluation data lives beside the project in ../shared/data)")
    return path


# --------------------------------------------------------------------------- index locations: both backends

BACKENDS = ("folder", "milvus-lite", "milvus-server")


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """A `milvus-lite server` process on 127.0.0.1 (the real client-server path), stopped after the session."""
    pytest.importorskip("pymilvus", reason="the Milvus backend's tests need pymilvus and milvus-lite (pip install '.[test]')")
    exe = Path(sys.executable).parent / "milvus-lite"
    if not exe.exists():
        pytest.skip(f"{exe} is missing: pip install milvus-lite")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path_factory.mktemp("milvus-server")
    log = (data / "server.log").open("w")
    proc = subprocess.Popen([str(exe), "server", "--data-dir", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    try:
        from pymilvus import MilvusClient

        from regional_chat.store.milvus import QUIET_KEEPALIVE  # the first client to a URI sets the options of its shared connection

        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"milvus-lite server exited with {proc.returncode}:\n{(data / 'server.log').read_text()[-2000:]}")
            try:
                MilvusClient(uri=uri, timeout=2, grpc_options=QUIET_KEEPALIVE).close()
                break
            except Exception:  # noqa: BLE001 - not listening yet
                if time.monotonic() > deadline:
                    pytest.fail(f"milvus-lite server did not answer within 60 s:\n{(data / 'server.log').read_text()[-2000:]}")
                time.sleep(0.3)
        yield uri
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(params=BACKENDS)
def index_location(request, tmp_path):
    """Where a test's index lives, once per backend: an index folder, a milvus-lite file, a Milvus server."""
    if request.param == "folder":
        return tmp_path / "ix"
    pytest.importorskip("pymilvus", reason="the Milvus backend's tests need pymilvus and milvus-lite (pip install '.[test]')")
    if request.param == "milvus-lite":
        return f"milvus:{tmp_path / 'rc.db'}"
    server = request.getfixturevalue("milvus_server")
    # one server, a collection name per test: the same name on every run (a SHA-256 of the test's id), never
    # shared by two tests of one session
    return f"milvus:{server}#t{hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:12]}"
