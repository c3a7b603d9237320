import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from regional_chat.cli import main
from regional_chat.store.folder import current_generation
from regional_chat.types import IndexInfo


def test_build_then_info_then_a_no_change_build(corpus, tmp_path, capsys):
    ix = str(tmp_path / "ix")
    args = ["--corpus", str(corpus), "--index", ix, "--model", "hashing:64", "--chunk-tokens", "40", "--quiet"]
    assert main(["build", *args]) == 0
    assert capsys.readouterr().out.startswith("4 added, 0 changed, 0 removed, 0 unchanged; 4 documents")
    assert main(["build", *args]) == 0
    assert capsys.readouterr().out.startswith("0 added, 0 changed, 0 removed, 4 unchanged; 4 documents")
    assert main(["info", "--index", ix, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["documents"], info["model"], info["dim"]) == (4, "hashing:64", 64)
    # one shape on both stores (the Milvus test below reads the same fields)
    assert list(info) == [f.name for f in dataclasses.fields(IndexInfo)]
    assert (info["store"], info["generation"], info["location"]) == ("folder", 1, str(Path(ix) / "gen-000001"))
    assert info["size_bytes"] > 0
    assert main(["info", "--index", ix]) == 0
    assert "documents:  4" in capsys.readouterr().out


def test_without_model_an_index_is_searched_and_updated_with_the_model_that_built_it(corpus, tmp_path, capsys, monkeypatch):
    from regional_chat.assistant import Assistant
    from regional_chat.store import recorded_model

    monkeypatch.delenv("REGIONAL_CHAT_MODEL", raising=False)
    ix = tmp_path / "ix"
    assert recorded_model(ix) is None
    assert main(["build", "--corpus", str(corpus), "--index", str(ix), "--model", "hashing:32", "--quiet"]) == 0
    capsys.readouterr()
    assert recorded_model(ix) == "hashing:32"
    # no --model: the next build finds nothing to re-embed, ask and the Python API use hashing:32
    assert main(["build", "--corpus", str(corpus), "--index", str(ix), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("0 added, 0 changed, 0 removed, 4 unchanged")
    assert main(["ask", "Who chaired the water meeting?", "--index", str(ix), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["question"] == "Who chaired the water meeting?"
    assert Assistant.load(ix).embedder.name == "hashing:32"
    # a --model that differs is still refused with the rebuild hint, not silently mixed
    assert main(["ask", "Who chaired the water meeting?", "--index", str(ix), "--model", "hashing:64"]) == 2
    assert "built with model hashing:32" in capsys.readouterr().err


def test_the_milvus_store_through_the_cli(corpus, tmp_path, capsys, monkeypatch):
    pytest.importorskip("pymilvus")
    monkeypatch.delenv("REGIONAL_CHAT_MODEL", raising=False)
    store = f"milvus:{tmp_path / 'rc.db'}"
    args = ["--corpus", str(corpus), "--store", store, "--model", "hashing:64", "--quiet"]
    assert main(["build", *args]) == 0
    assert capsys.readouterr().out.startswith("4 added, 0 changed, 0 removed, 0 unchanged; 4 documents")
    assert main(["build", *args]) == 0
    assert capsys.readouterr().out.startswith("0 added, 0 changed, 0 removed, 4 unchanged")
    assert main(["info", "--store", store]) == 0
    out = capsys.readouterr().out
    assert f"index:      {store} (Milvus, generation 1)" in out and "documents:  4" in out and "hashing:64" in out
    assert main(["info", "--store", store, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["location"], info["generation"], info["documents"], info["model"]) == (store, 1, 4, "hashing:64")
    assert list(info) == [f.name for f in dataclasses.fields(IndexInfo)] and info["store"] == "milvus"
    # no --model: the store's recorded model answers (hashing:64), filtered to one country inside retrieval
    assert main(["ask", "Who opened the water conference?", "--store", store, "--where", "country=TJK", "--json"]) == 0
    reply = json.loads(capsys.readouterr().out)
    shown = reply["quotes"] + reply["related"]
    assert shown and all(q["doc_id"] == "news/briefs.jsonl#tj-1" for q in shown)
    assert main(["check", "--store", store]) == 2
    assert main(["build", *args[:2], "--store", "index-folder"]) == 2
    assert "--store takes milvus:<file-or-URI>" in capsys.readouterr().err


def test_errors_are_one_clear_line_and_exit_code_2(tmp_path, capsys):
    assert main(["info", "--index", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.strip() == f"error: no index at {tmp_path / 'none'}: run `regional-chat build` first."
    assert main(["build", "--corpus", str(tmp_path / "nope"), "--index", str(tmp_path / "ix"), "--model", "hashing:8"]) == 2
    assert "error: corpus" in capsys.readouterr().err


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "regional_chat", "--help"], capture_output=True, text=True, check=True)
    assert "build" in out.stdout and "info" in out.stdout


def test_importing_the_package_loads_nothing_heavy():
    code = "import sys, regional_chat; heavy = [m for m in ('torch', 'faiss', 'gradio', 'sentence_transformers', 'spacy') if m in sys.modules]; print(heavy)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- damage, repair and check




def _cli_args(corpus, ix):
    return ["--corpus", str(corpus), "--index", str(ix), "--model", "hashing:64", "--quiet"]


def _ask(ix, capsys, question="Who chaired the water meeting?"):
    code = main(["ask", question, "--index", str(ix), "--model", "hashing:64", "--json"])
    captured = capsys.readouterr()
    return code, captured


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_four_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(4):
        data[middle + i] ^= 0xFF
    path.write_bytes(bytes(data))


def _corrupt_lexical(gen: Path) -> None:
    target = max((p for p in (gen / "lexical").iterdir() if p.suffix == ".npy"), key=lambda p: p.stat().st_size)
    target.write_bytes(b"\x93NUMPY")  # a header cut short: the "EOF: reading array header" of the report


DAMAGE = {
    "truncated store": (lambda gen: _truncate(gen / "store.sqlite"), 0),
    "truncated vectors": (lambda gen: _truncate(gen / "vectors.faiss"), 4),
    "four flipped bytes in the vectors": (lambda gen: _flip_four_bytes(gen / "vectors.faiss"), 4),
    "lexical deleted": (lambda gen: shutil.rmtree(gen / "lexical"), 0),
    "lexical file corrupted": (_corrupt_lexical, 0),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_check_finds_the_damage_and_build_repairs_it(case, corpus, tmp_path, capsys):
    ix = tmp_path / "ix"
    assert main(["build", *_cli_args(corpus, ix)]) == 0
    capsys.readouterr()
    code, healthy = _ask(ix, capsys)
    assert code == 0
    assert main(["check", "--index", str(ix)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")
    damage, embedded = DAMAGE[case]
    damage(current_generation(ix))

    assert main(["check", "--index", str(ix)]) == 1
    err = capsys.readouterr().err
    assert "damaged: " in err and "run `regional-chat build` to repair it" in err

    assert main(["build", *_cli_args(corpus, ix), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["repaired"], "the build says what it repaired"
    assert report["chunks_embedded"] == (report["chunks"] if embedded else 0)  # re-embedding only when vectors are lost
    assert main(["check", "--index", str(ix)]) == 0
    capsys.readouterr()
    code, after = _ask(ix, capsys)
    assert code == 0 and json.loads(after.out) == json.loads(healthy.out)


def test_a_broken_lexical_file_names_the_file_and_the_fix(corpus, tmp_path, capsys):
    ix = tmp_path / "ix"
    assert main(["build", *_cli_args(corpus, ix)]) == 0
    gen = current_generation(ix)
    _corrupt_lexical(gen)
    code, captured = _ask(ix, capsys)
    assert code == 2
    assert f"the BM25 index in {gen / 'lexical'} is damaged" in captured.err
    assert "run `regional-chat build` to repair it" in captured.err


def test_a_killed_swap_leaves_no_pointer_file_behind(corpus, tmp_path, capsys):
    ix = tmp_path / "ix"
    assert main(["build", *_cli_args(corpus, ix)]) == 0
    (ix / ".tmp-CURRENT-999999").write_text("gen-000009\n")  # what a kill between write and rename leaves
    (corpus / "new.txt").write_text("The Aral Sea shrank.\n", encoding="utf-8")
    assert main(["build", *_cli_args(corpus, ix)]) == 0
    assert not list(ix.glob(".tmp-*"))


def test_k_must_be_positive(tmp_path, capsys):
    for k in ("0", "-5", "101", "two"):
        with pytest.raises(SystemExit) as exit_:
            main(["ask", "Where?", "--index", str(tmp_path), "-k", k])
        assert exit_.value.code == 2
        assert "-k" in capsys.readouterr().err


def test_the_api_refuses_a_bad_k_or_a_string_history(corpus, tmp_path, settings):
    from regional_chat.assistant import Assistant
    from regional_chat.build import build_index

    build_index(corpus, tmp_path / "ix", settings, warn=lambda m: None)
    bot = Assistant.load(tmp_path / "ix", settings)
    for k in (0, -5, 101, 2.5, True):
        with pytest.raises(ValueError, match="k must be a whole number"):
            bot.answer("Who chaired the water meeting?", k=k)
    with pytest.raises(ValueError, match="history must be a list"):
        bot.answer("Where is the next one?", history="Who chaired the water meeting?")
    assert bot.answer("Who chaired the water meeting?", k=1).question == "Who chaired the water meeting?"


HOSTILE = "# Tulips\n\nTulips grow wild in the Tian Shan mountains.\x1b]0;pwned\x07 The valley\x1b[2J is red in April.\n"


def test_no_terminal_escapes_reach_the_terminal(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "tulips.md").write_text(HOSTILE, encoding="utf-8")
    (corpus / "evil\x1b[2Jname.txt").write_text("Not UTF-8 \xff".encode("latin-1").decode("latin-1"), encoding="latin-1")
    ix = tmp_path / "ix"
    assert main(["build", *_cli_args(corpus, ix)]) == 0
    build = capsys.readouterr()
    assert main(["info", "--index", str(ix)]) == 0
    info = capsys.readouterr()
    assert main(["ask", "Where do tulips grow wild?", "--index", str(ix), "--model", "hashing:64"]) == 0
    ask = capsys.readouterr()
    for out in (build.out, build.err, info.out, ask.out, ask.err):
        assert "\x1b" not in out and "\x07" not in out
    assert "evil\\x1b[2Jname.txt" in build.err + build.out
    assert "Tian Shan" in ask.out and "\\x1b]0;pwned\\x07" in ask.out


def test_info_into_a_closed_pipe_ends_quietly(corpus, tmp_path):
    ix = tmp_path / "ix"
    assert main(["build", *_cli_args(corpus, ix)]) == 0
    cmd = f"{sys.executable} -m regional_chat info --index {ix} | head -1"
    out = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd}"], capture_output=True, text=True)
    assert out.stdout.startswith("index:")
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr


def test_a_one_off_ask_imports_neither_torch_nor_transformers(corpus, tmp_path):
    """`ask` runs the reader (and a model's question encoder) in numpy: seconds of imports saved; --engine torch loads them."""
    import textwrap

    assert main(["build", "--corpus", str(corpus), "--index", str(tmp_path / "ix"), "--model", "hashing:64", "--quiet"]) == 0
    code = textwrap.dedent("""
        import sys
        from regional_chat.cli import main
        code = main(["ask", "--index", sys.argv[1], "--json", *sys.argv[2:], "How many tonnes of cargo did the Trans-Caspian route carry in 2023?"])
        print("IMPORTED", code, "torch" in sys.modules, "transformers" in sys.modules, "sentence_transformers" in sys.modules)
    """)
    answers = {}
    for engine in ("numpy", "torch"):
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ix"), "--engine", engine], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        body, imported = out.stdout.rsplit("IMPORTED", 1)
        answers[engine] = json.loads(body)
        assert imported.split() == (["0", "False", "False", "False"] if engine == "numpy" else ["0", "True", "True", "False"])
    assert answers["numpy"]["found"] and "2.7 million" in answers["numpy"]["short"]
    where = lambda a: [(q["doc_id"], q["start"], q["end"], q["highlight"]) for q in a["quotes"]]  # noqa: E731 - scores differ in bfloat16
    assert answers["numpy"]["short"] == answers["torch"]["short"] and where(answers["numpy"]) == where(answers["torch"])
