"""Upload staging: safe file names, files checked with the corpus's readers before they land, and who may upload."""

from __future__ import annotations

import pytest

from regional_chat.ingest.upload import Staged, UploadError, add_upload, clean_filename, stage_uploads, uploads_allowed


@pytest.mark.parametrize(
    "name, expected",
    [
        ("notes.txt", "notes.txt"),
        ("../../etc/passwd.md", "passwd.md"),
        ("..\\..\\windows\\win.ini.txt", "win.ini.txt"),
        ("/abs/path/Report 2024 (final).MD", "Report-2024-final.md"),
        (".hidden.jsonl", "hidden.jsonl"),
        ("a..b....txt", "a.b.txt"),
        ("Доклад.txt", "Доклад.txt"),
    ],
)
def test_clean_filename(name, expected):
    assert clean_filename(name) == expected


@pytest.mark.parametrize("name", ["run.exe", "notes.txt.exe", "slides.pptx", "noext", ".txt", "../.md", "***.txt"])
def test_clean_filename_refuses(name):
    with pytest.raises(UploadError):
        clean_filename(name)


def test_add_upload_checks_type_size_and_content_and_never_overwrites(tmp_path):
    corpus, up = tmp_path / "corpus", tmp_path / "up"
    corpus.mkdir(), up.mkdir()
    (corpus / "news.md").write_text("old\n", encoding="utf-8")
    good = up / "news.md"
    good.write_text("# News\n\nThe Caspian sturgeon festival takes place in Atyrau.\n", encoding="utf-8")
    target, warnings = add_upload(corpus, good, 10_000)
    assert target == corpus.resolve() / "news-2.md" and warnings == []
    assert (corpus / "news.md").read_text(encoding="utf-8") == "old\n"
    target, _ = add_upload(corpus, good, 10_000, original_name="../../../escape.md")
    assert target == corpus.resolve() / "escape.md" and not (tmp_path / "escape.md").exists()

    lines = up / "lines.jsonl"
    lines.write_text('{"text": "one"}\nnot json\n', encoding="utf-8")
    assert add_upload(corpus, lines, 10_000)[1] == ["lines.jsonl:2: not JSON (Expecting value); line skipped."]
    for name, data, message in [
        ("big.txt", b"x" * 20_000, "over the"),
        ("bin.txt", b"\x00\x01\x02", "binary"),
        ("latin.txt", "caf\xe9".encode("latin-1"), "not UTF-8"),
        ("empty.jsonl", b'{"title": "no text"}\n', "no document"),
        ("run.exe", b"MZ", "only .txt"),
    ]:
        (up / name).write_bytes(data)
        with pytest.raises(UploadError, match=message):
            add_upload(corpus, up / name, 10_000)
    assert sorted(p.name for p in corpus.iterdir()) == ["escape.md", "lines.jsonl", "news-2.md", "news.md"]  # no staged leftovers


def test_stage_uploads_adds_the_good_files_and_lists_every_problem_in_order(tmp_path):
    corpus, up = tmp_path / "corpus", tmp_path / "up"
    up.mkdir()
    (up / "a.md").write_text("# A\n\nThe Aral Sea shrank after 1960.\n", encoding="utf-8")
    (up / "run.exe").write_bytes(b"MZ")
    (up / "lines.jsonl").write_text('{"text": "one"}\nnot json\n', encoding="utf-8")
    (up / "empty.txt").write_bytes(b"")

    staged = stage_uploads(corpus, [up / "a.md", up / "run.exe", up / "lines.jsonl", up / "empty.txt"], 10_000)

    assert staged.added == (corpus.resolve() / "a.md", corpus.resolve() / "lines.jsonl")
    assert len(staged.problems) == 3
    assert "only .txt" in staged.problems[0]
    assert staged.problems[1] == "lines.jsonl:2: not JSON (Expecting value); line skipped."
    assert staged.problems[2].startswith("empty.txt")
    assert sorted(p.name for p in corpus.iterdir()) == ["a.md", "lines.jsonl"]
    assert stage_uploads(corpus, [], 10_000) == Staged()


def test_uploads_are_off_when_read_only_or_public_without_login():
    assert uploads_allowed("127.0.0.1", False, None)
    assert uploads_allowed("localhost", False, None) and uploads_allowed("::1", False, None)
    assert not uploads_allowed("127.0.0.1", True, None)
    assert not uploads_allowed("0.0.0.0", False, None)
    assert not uploads_allowed("192.168.1.5", False, None)
    assert not uploads_allowed("not-an-address", False, None)
    assert uploads_allowed("0.0.0.0", False, [("ann", "secret")])
    assert not uploads_allowed("0.0.0.0", True, [("ann", "secret")])  # read-only wins over a login
