from pathlib import Path

import pytest

from regional_chat.documents import CorpusError, DocumentError, list_files, read_documents


def _docs(corpus: Path):
    out, warnings = [], []
    for source in list_files(corpus):
        try:
            for item in read_documents(source):
                (warnings if isinstance(item, str) else out).append(item)
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
    assert "binary.txt: looks binary" in joined
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
