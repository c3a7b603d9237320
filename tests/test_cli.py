import json
import subprocess
import sys

from regional_chat.cli import main


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
    assert main(["info", "--index", ix]) == 0
    assert "documents:  4" in capsys.readouterr().out


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
