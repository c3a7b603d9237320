from pathlib import Path

import pytest

from regional_chat.documents import CorpusError, DocumentError, Notice, list_files, read_documents


def _docs(corpus: Path):
    out, warnings = [], []
    for source in list_files(corpus):
        try:
            for item in read_documents(source):
                if isinstance(item, Notice):
                    warnings.append(item.text)
                else:
                    out.append(item)
        except DocumentError as exc:
            warnings.append(str(exc))
    return out, warnings


def test_reads_every_format_with_ids_titles_and_metadata(corpus):
    docs, warnings = _docs(corpus)
    assert warnings == []
    assert [d.doc_id for d in docs] == ["news/briefs.jsonl#kg-1", "news/briefs.jsonl#tj-1", "transport.txt", "water.md"]
    by_id = {d.doc_id: d for d in docs}
    water = by_id["water.md"]
    assert water.title == "Water talks in Tashkent"
    assert water.date == "2024-03-14"
    assert water.source == "https://example.org/water-talks"
    assert water.metadata["country"] == "Uzbekistan"
    assert not water.text.startswith("---")  # front matter is metadata, not text
    assert water.text.startswith("# Water talks in Tashkent")
    assert by_id["transport.txt"].title == "Trans-Caspian route carries record cargo"
    kg = by_id["news/briefs.jsonl#kg-1"]
    assert kg.title == "Kyrgyzstan opens border post"
    assert kg.metadata["id"] == "kg-1" and "text" not in kg.metadata
    assert len({d.content_hash for d in docs}) == 4


def test_first_line_is_the_title_without_front_matter(tmp_path):
    (tmp_path / "a.md").write_text("Some words first\n\n# Heading later\nBody.\n", encoding="utf-8")
    (tmp_path / "b.md").write_text("\n\n## The heading\nBody text.\n", encoding="utf-8")
    docs, _ = _docs(tmp_path)
    assert [d.title for d in docs] == ["Heading later", "The heading"]


def test_bad_files_are_skipped_with_a_warning_naming_them(tmp_path):
    (tmp_path / "good.txt").write_text("Good document.\n", encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 au lait".encode("latin-1"))
    (tmp_path / "empty.md").write_text("", encoding="utf-8")
    (tmp_path / "blank.txt").write_text("   \n\n", encoding="utf-8")
    (tmp_path / "lines.jsonl").write_text('{"text": "ok line"}\nnot json\n{"title": "no text"}\n{"id": 7, "text": "seven"}\n', encoding="utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")  # not a corpus format: not even listed
    docs, warnings = _docs(tmp_path)
    assert [d.doc_id for d in docs] == ["good.txt", "lines.jsonl#1", "lines.jsonl#7"]
    joined = "\n".join(warnings)
    assert "binary.txt: holds a NUL byte at byte 8 (binary" in joined
    assert "latin1.txt: is not UTF-8" in joined
    assert "empty.md: has no text" in joined
    assert "blank.txt: has no text" in joined
    assert "lines.jsonl:2: not JSON" in joined
    assert 'lines.jsonl:3: has no "text"' in joined
    assert len(warnings) == 6


def test_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        list_files(tmp_path / "nope")


def test_a_single_jsonl_file_is_a_corpus(corpus):
    files = list_files(corpus / "news" / "briefs.jsonl")
    assert [f.rel for f in files] == ["briefs.jsonl"]
    ids = [d.doc_id for d in read_documents(files[0])]
    assert ids == ["briefs.jsonl#kg-1", "briefs.jsonl#tj-1"]


def test_hidden_files_are_ignored(tmp_path):
    (tmp_path / ".draft.txt").write_text("secret", encoding="utf-8")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.txt").write_text("x", encoding="utf-8")
    (tmp_path / "a.txt").write_text("A.", encoding="utf-8")
    assert [f.rel for f in list_files(tmp_path)] == ["a.txt"]


def _listed(corpus: Path):
    warnings: list[str] = []
    return [f.rel for f in list_files(corpus, warn=warnings.append)], warnings


def test_links_outside_the_corpus_are_skipped_with_a_warning_naming_them(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("The password is swordfish.\n", encoding="utf-8")
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "real.txt").write_text("A real document.\n", encoding="utf-8")
    (corpus / "inside-link.txt").symlink_to(corpus / "real.txt")  # resolves inside: read
    (corpus / "hostname.txt").symlink_to("/etc/hostname")
    (corpus / "secret.txt").symlink_to(outside / "secret.txt")
    (corpus / "dangling.txt").symlink_to(tmp_path / "nothing-here.txt")
    (corpus / "loop-a.txt").symlink_to(corpus / "loop-b.txt")
    (corpus / "loop-b.txt").symlink_to(corpus / "loop-a.txt")
    (corpus / "sub" / "away").symlink_to(outside, target_is_directory=True)
    listed, warnings = _listed(corpus)
    assert listed == ["inside-link.txt", "real.txt"]
    joined = "\n".join(warnings)
    assert "hostname.txt: a symbolic link to /etc/hostname, outside the corpus folder; skipped." in joined
    assert f"secret.txt: a symbolic link to {outside.resolve() / 'secret.txt'}, outside the corpus folder; skipped." in joined
    assert "dangling.txt: a broken symbolic link" in joined
    assert "loop-a.txt: a symbolic link loop; skipped." in joined and "loop-b.txt: a symbolic link loop; skipped." in joined
    assert "sub/away: a link to a folder" in joined
    assert len(warnings) == 6


def test_a_nul_byte_anywhere_skips_the_file_or_line_naming_its_offset(tmp_path):
    body = b"Plain text. " * 8500  # 102,000 bytes: far past the first 8 KB that used to be checked
    (tmp_path / "late-nul.txt").write_bytes(body + b"\x00tail\n")
    (tmp_path / "clean.txt").write_bytes(body + b"\n")
    lines = (
        b'{"id": "a", "text": "fine"}\n'
        b'{"id": "b", "text": "escaped \\u0000 nul"}\n'
        b'{"id": "c", "text": "raw \x00 nul"}\n'
        b'{"id": "d", "text": "fine", "title": "t\\u0000"}\n'
        b'{"id": "e", "text": "also fine"}\n'
    )
    (tmp_path / "lines.jsonl").write_bytes(lines)
    docs, warnings = _docs(tmp_path)
    assert [d.doc_id for d in docs] == ["clean.txt", "lines.jsonl#a", "lines.jsonl#e"]
    assert all("\x00" not in d.text for d in docs)
    joined = "\n".join(warnings)
    assert "late-nul.txt: holds a NUL byte at byte 102,000" in joined
    assert 'lines.jsonl:2: holds a NUL character (a \\u0000 escape) in "text" at character 8, line starts at byte 28; line skipped.' in joined
    assert lines.find(b"\x00") == 95  # the byte offset in the file, counted by hand: lines of 28 and 42 bytes, then 25
    assert "lines.jsonl:3: holds a NUL byte at byte 95 of the file; line skipped." in joined
    assert "lines.jsonl:4: holds a NUL character (a \\u0000 escape) in field 'title'" in joined


def test_a_file_over_the_size_limit_is_said_to_be_skipped(tmp_path, monkeypatch):
    import regional_chat.ingest.text as text_reader

    monkeypatch.setattr(text_reader, "MAX_BYTES", 100)
    (tmp_path / "big.txt").write_text("word " * 50, encoding="utf-8")
    _, warnings = _docs(tmp_path)
    assert warnings == ["big.txt: 250 bytes is over the 100-byte limit for one document; skipped. Split it into smaller files to index it."]
