"""The PDF, HTML and DOCX readers (regional_chat.ingest) and their place in the corpus build."""

import io
import logging
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import FIXTURES
from regional_chat.documents import SUFFIXES, DocumentError, Notice, SourceFile, list_files, read_documents, sha256
from regional_chat.build import build_index
from regional_chat.store import load_index
from regional_chat.ingest import READERS, docx, html, max_bytes, pdf, reader

INGEST = FIXTURES / "ingest"


def _read(name: str):
    path = INGEST / name
    return reader(path.suffix)(name, path.read_bytes())


def _span(doc, sentence: str) -> tuple[int, int]:
    """Where ``sentence`` sits in the document, as a quote would point at it."""
    start = doc.text.index(sentence)
    end = start + len(sentence)
    assert doc.text[start:end] == sentence
    return start, end


# --------------------------------------------------------------------------- registry


def test_every_reader_suffix_is_a_corpus_suffix_and_the_libraries_load_lazily():
    from regional_chat.ingest import text

    # every corpus suffix has a reader here; .jsonl is streamed line by line (ingest.jsonl.read_lines)
    assert set(READERS) | {".jsonl"} == set(SUFFIXES)
    assert reader(".PDF") is pdf.read and reader(".htm") is html.read and reader(".docx") is docx.read
    assert reader(".txt") is text.read and reader(".MD") is text.read_markdown
    assert max_bytes(".pdf") == 64 * 1024 * 1024 and max_bytes(".html") == 32 * 1024 * 1024 == max_bytes(".md")
    with pytest.raises(ValueError, match="no reader for '.odt'"):
        reader(".odt")
    probe = "import sys, regional_chat.documents, regional_chat.ingest; print(sorted(m for m in ('pypdf', 'trafilatura', 'docx', 'lxml') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- PDF

PAGE_2_SENTENCE = "Everyone has the right to life, liberty and security of person."


def test_pdf_text_pages_and_metadata():
    doc, warnings = _read("udhr-two-pages.pdf")
    assert warnings == []
    assert doc.doc_id == "udhr-two-pages.pdf"
    assert doc.title == "Universal Declaration of Human Rights (excerpt)"
    assert dict(doc.metadata) == {
        "title": "Universal Declaration of Human Rights (excerpt)",
        "author": "United Nations General Assembly",
        "date": "1948-12-10",
    }
    assert doc.date == "1948-12-10"
    assert doc.content_hash == sha256((INGEST / "udhr-two-pages.pdf").read_bytes())
    assert doc.text.startswith("Universal Declaration of Human Rights\nArticle 1\nAll human beings are born free and equal in dignity and rights.\n")
    assert doc.text.endswith("slavery and the slave\ntrade shall be prohibited in all their forms.")
    page_2 = doc.text.index("Article 3")
    assert doc.pages == (0, page_2) and doc.text[page_2 - 2 : page_2] == "\n\n"  # pages joined by a blank line
    start, end = _span(doc, PAGE_2_SENTENCE)
    assert doc.page_at(start) == 2 and doc.page_at(end - 1) == 2
    start, _ = _span(doc, "All human beings are born free and equal in dignity and rights.")
    assert doc.page_at(start) == 1


def test_a_pdf_page_without_text_layer_is_named_and_keeps_its_number():
    doc, warnings = _read("udhr-scanned-page.pdf")
    assert warnings == ["udhr-scanned-page.pdf: page 2 has no text layer (scanned?); indexed the other 2 pages."]
    page_3 = doc.text.index("Article 13")
    assert doc.pages == (0, page_3, page_3)  # the empty page starts where the next page with text does
    start, _ = _span(doc, "Everyone has the right to freedom of movement and residence within")
    assert doc.page_at(start) == 3
    assert doc.page_at(doc.text.index("Article 2")) == 1


def test_a_pdf_without_any_text_is_refused_with_what_to_do():
    with pytest.raises(DocumentError) as err:
        _read("scanned-only.pdf")
    assert str(err.value) == "scanned-only.pdf: has no text layer (a scanned PDF?); skipped. Run OCR on it to index it."


def test_pdf_with_a_user_password_is_refused_and_one_without_is_read():
    with pytest.raises(DocumentError, match=r"^udhr-encrypted\.pdf: is encrypted with a password; skipped\. Save a copy without the password"):
        _read("udhr-encrypted.pdf")
    doc, warnings = _read("udhr-no-user-password.pdf")
    plain, _ = _read("udhr-two-pages.pdf")
    assert warnings == [] and doc.text == plain.text and doc.pages == plain.pages and doc.metadata == plain.metadata
    assert doc.content_hash != plain.content_hash  # the hash is of the file's own bytes


@pytest.mark.parametrize(
    "damage, found",
    [
        (lambda data: data[: len(data) // 2], "Stream has ended unexpectedly"),
        (lambda data: b"", "EmptyFileError"),
        (lambda data: b"hello world, not a PDF at all", "invalid pdf header"),
        (lambda data: b"%PDF-1.4\n" + bytes(range(1, 256)) * 4, "PdfStreamError"),
    ],
)
def test_a_damaged_pdf_is_a_document_error_and_prints_nothing(damage, found, capfd, caplog):
    data = damage((INGEST / "udhr-two-pages.pdf").read_bytes())
    with pytest.raises(DocumentError) as err:
        pdf.read("reports/broken.pdf", data)
    message = str(err.value)
    assert message.startswith("reports/broken.pdf: is not a readable PDF (") and found in message
    assert "download it again" in message
    assert capfd.readouterr().err == ""  # pypdf's own log lines stay off stderr
    assert not [r for r in caplog.records if r.name.startswith("pypdf")]
    assert logging.getLogger("pypdf").propagate is True  # and its logger is left as it was


def test_a_repaired_pdf_is_read_with_a_warning(capfd):
    data = (INGEST / "udhr-two-pages.pdf").read_bytes().replace(b"startxref\n", b"startxref\n9")  # a wrong xref offset
    doc, warnings = pdf.read("bent.pdf", data)
    assert warnings == ["bent.pdf: is damaged and was read as far as possible (pypdf: incorrect startxref pointer(2); 1 more); some text may be missing."]
    assert PAGE_2_SENTENCE in doc.text and len(doc.pages) == 2
    assert capfd.readouterr().err == ""


def test_pdf_size_limit(monkeypatch):
    monkeypatch.setattr(pdf, "MAX_BYTES", 1000)
    with pytest.raises(DocumentError, match=r"^big\.pdf: 1,691 bytes is over the 1,000-byte limit for one document; skipped\."):
        pdf.read("big.pdf", (INGEST / "udhr-two-pages.pdf").read_bytes())


# --------------------------------------------------------------------------- HTML

ARTICLE_33_1 = (
    "1. The parties to any dispute, the continuance of which is likely to endanger the maintenance of international "
    "peace and security, shall, first of all, seek a solution by negotiation, enquiry, mediation, conciliation, "
    "arbitration, judicial settlement, resort to regional agencies or arrangements, or other peaceful means of their own choice."
)


def test_html_main_text_without_boilerplate_and_its_metadata():
    doc, warnings = _read("charter-chapter-6.html")
    assert warnings == []
    assert doc.text.split("\n\n") == [
        "Chapter VI: Pacific Settlement of Disputes",
        "Signed at San Francisco on 26 June 1945.",
        "Article 33",
        ARTICLE_33_1,
        "2. The Security Council shall, when it deems necessary, call upon the parties to settle their dispute by such means.",
        "Article 52",
        doc.text.split("\n\n")[-1],
    ]
    assert doc.text.endswith("consistent with the Purposes and Principles of the United Nations.")
    for boilerplate in ("Home", "About Us", "News Desk Menu", "cookies", "Related: Chapter V", "Copyright notice", "Contact us", "Privacy notice"):
        assert boilerplate not in doc.text
    assert doc.title == "Chapter VI: Pacific Settlement of Disputes"
    assert dict(doc.metadata) == {
        "title": "Chapter VI: Pacific Settlement of Disputes",
        "author": "United Nations",
        "date": "1945-06-26",
        "url": "https://www.un.org/en/about-us/un-charter/chapter-6",
        "source": "https://www.un.org/en/about-us/un-charter/chapter-6",
        "sitename": "United Nations",
    }
    assert doc.source == "https://www.un.org/en/about-us/un-charter/chapter-6" and doc.pages == ()
    assert doc.page_at(_span(doc, ARTICLE_33_1)[0]) is None


def test_malformed_html_still_gives_its_text():
    doc, warnings = _read("udhr-article-13-malformed.html")
    assert warnings == [] and doc.title == "Article 13" and dict(doc.metadata) == {"title": "Article 13"}
    paragraphs = doc.text.split("\n\n")
    assert paragraphs[:2] == ["Article 13", "Everyone has the right to freedom of movement and residence within the borders of each State."]
    assert "Everyone has the right to leave any country, including his own, and to return to his country." in paragraphs[2]
    assert "Paris, 10 December 1948" in doc.text and "<" not in doc.text and "\x00" not in doc.text


def test_html_line_breaks_lists_and_tables():
    page = (
        b"<html><body><article><h2>Border posts</h2><p>The Dostuk post<br>reopened on Monday.</p>"
        b"<ul><li>Trucks wait two hours.</li><li>Cars wait one hour.</li></ul>"
        b"<table><tr><th>Post</th><th>Hours</th></tr><tr><td>Dostuk</td><td>24</td></tr></table></article></body></html>"
    )
    doc, _ = html.read("posts.html", page)
    assert doc.text == "Border posts\n\nThe Dostuk post\nreopened on Monday.\n\nTrucks wait two hours.\n\nCars wait one hour.\n\nPost | Hours\nDostuk | 24"


@pytest.mark.parametrize(
    "data, text",
    [
        ('<html><head><meta charset="windows-1251"></head><body><p>Казахстан и Узбекистан подписали соглашение о воде.</p></body></html>'.encode("cp1251"),
         "Казахстан и Узбекистан подписали соглашение о воде."),
        (b'<html><head><meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1"></head><body><p>The minister\x92s visit ended.</p></body></html>',
         "The minister\u2019s visit ended."),  # read as windows-1252, as browsers do
        (b"\xef\xbb\xbf<html><body><p>A page with a byte order mark.</p></body></html>", "A page with a byte order mark."),
        ("\ufeff<html><body><p>Страница в UTF-16.</p></body></html>".encode("utf-16-le"), "Страница в UTF-16."),
    ],
)
def test_html_is_decoded_by_its_bom_or_declared_charset(data, text):
    assert html.read("page.html", data)[0].text == text


@pytest.mark.parametrize(
    "data, message",
    [
        (b"<html><body><p>caf\xe9 au lait</p></body></html>", "page.html: declares no charset and is not UTF-8, but byte 18 is not utf-8; skipped. Save it as UTF-8"),
        (b"<html><body><p>text\x00more</p></body></html>", "page.html: holds a NUL byte at byte 19 (binary, or damaged text); skipped."),
        (b'<html><head><meta charset="klingon-8"></head><body><p>x</p></body></html>', "page.html: declares the unknown charset 'klingon-8'; skipped."),
        (b"<html><body><nav><a href='/'>Home</a> <a href='/x'>About</a></nav><footer>Contact us</footer></body></html>", "page.html: has no main text (only navigation, boilerplate or nothing); skipped."),
        (b"", "page.html: has no main text"),
    ],
)
def test_unreadable_html_is_a_document_error(data, message):
    with pytest.raises(DocumentError) as err:
        html.read("page.html", data)
    assert str(err.value).startswith(message)


# --------------------------------------------------------------------------- DOCX

PREAMBLE_START = "WE THE PEOPLES OF THE UNITED NATIONS DETERMINED to save succeeding generations from the scourge of war,"


def test_docx_headings_paragraphs_table_and_core_properties():
    doc, warnings = _read("charter-preamble.docx")
    assert warnings == []
    paragraphs = doc.text.split("\n\n")
    assert paragraphs[:3] == ["Charter of the United Nations", "Preamble", paragraphs[2]]
    assert paragraphs[2].startswith(PREAMBLE_START) and paragraphs[2].endswith("of nations large and small,")
    assert paragraphs[3:] == [  # the empty paragraph is gone
        "Chapter I: Purposes and Principles",
        "Article 2",
        "3. All Members shall settle their international disputes by peaceful means in such a manner that international peace and security, and justice, are not endangered.",
        "Chapter | Subject\nVI | Pacific Settlement of Disputes\nVIII | Regional Arrangements",
        "Signed at San Francisco on 26 June 1945.",
    ]
    assert doc.title == "Charter of the United Nations (excerpt)"
    assert dict(doc.metadata) == {
        "title": "Charter of the United Nations (excerpt)",
        "author": "United Nations",
        "subject": "Founding treaty of the United Nations",
        "keywords": "charter, peaceful settlement, disputes",
        "date": "1945-06-26",
    }
    assert doc.pages == () and doc.content_hash == sha256((INGEST / "charter-preamble.docx").read_bytes())
    start, end = _span(doc, "All Members shall settle their international disputes by peaceful means")
    assert doc.text[start:end].startswith("All Members")


def test_docx_title_falls_back_to_the_first_heading(tmp_path):
    import docx as python_docx

    made = python_docx.Document()
    made.add_paragraph("")
    made.add_heading("Water release schedule", level=1)
    made.add_paragraph("Toktogul releases rise in July.")
    made.core_properties.title = ""
    buffer = io.BytesIO()
    made.save(buffer)
    doc, _ = docx.read("schedule.docx", buffer.getvalue())
    assert doc.title == "Water release schedule" and doc.text == "Water release schedule\n\nToktogul releases rise in July."
    assert "title" not in doc.metadata


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return out.getvalue()


def _with_document_xml(body: bytes) -> bytes:
    with zipfile.ZipFile(INGEST / "charter-preamble.docx") as z:
        entries = {name: z.read(name) for name in z.namelist()}
    entries["word/document.xml"] = body
    return _zip(entries)


@pytest.mark.parametrize(
    "data, message",
    [
        ((INGEST / "not-a-word-file.docx").read_bytes(), "x.docx: is a ZIP archive but not a Word document (it has no word/document.xml); skipped. Open it in Word or LibreOffice and save it as .docx"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 an old binary .doc", "x.docx: is not a .docx file (not a ZIP archive, or a damaged one"),
        ((INGEST / "charter-preamble.docx").read_bytes()[:5000], "x.docx: is not a .docx file (not a ZIP archive, or a damaged one"),
        (_with_document_xml(b"<w:document this is not XML"), "x.docx: is not a valid Word document (XMLSyntaxError"),
        (_with_document_xml(b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p/></w:body></w:document>'), "x.docx: has no text; skipped."),
    ],
)
def test_a_docx_that_is_not_one_is_a_document_error(data, message):
    with pytest.raises(DocumentError) as err:
        docx.read("x.docx", data)
    assert str(err.value).startswith(message)


def test_docx_zip_bomb_guard(monkeypatch):
    monkeypatch.setattr(docx, "MAX_UNZIPPED_BYTES", 10_000)
    with pytest.raises(DocumentError, match=r"^x\.docx: would unpack to [\d,]+ bytes, over the 10,000-byte limit"):
        docx.read("x.docx", (INGEST / "charter-preamble.docx").read_bytes())


# --------------------------------------------------------------------------- the corpus


def _corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    (corpus / "web").mkdir(parents=True)
    shutil.copy(INGEST / "udhr-scanned-page.pdf", corpus / "udhr.pdf")
    shutil.copy(INGEST / "charter-chapter-6.html", corpus / "web" / "chapter-6.htm")
    shutil.copy(INGEST / "charter-preamble.docx", corpus / "preamble.docx")
    (corpus / "broken.pdf").write_bytes((INGEST / "udhr-two-pages.pdf").read_bytes()[:600])
    return corpus


def test_read_documents_dispatches_by_suffix_and_yields_warnings_first(tmp_path):
    corpus = _corpus(tmp_path)
    files = list_files(corpus)
    assert [f.rel for f in files] == ["broken.pdf", "preamble.docx", "udhr.pdf", "web/chapter-6.htm"]
    by_rel = {f.rel: f for f in files}
    items = list(read_documents(by_rel["udhr.pdf"]))
    assert items[0] == Notice("udhr.pdf: page 2 has no text layer (scanned?); indexed the other 2 pages.", skipped=False)
    assert len(items) == 2 and items[1].doc_id == "udhr.pdf" and items[1].pages[1] == items[1].pages[2]
    assert [d.doc_id for d in read_documents(by_rel["web/chapter-6.htm"])] == ["web/chapter-6.htm"]
    with pytest.raises(DocumentError, match=r"^broken\.pdf: is not a readable PDF"):
        list(read_documents(by_rel["broken.pdf"]))
    huge = SourceFile(by_rel["preamble.docx"].path, "preamble.docx", 65 * 1024 * 1024, 0)
    with pytest.raises(DocumentError, match=r"^preamble\.docx: 68,157,440 bytes is over the 67,108,864-byte limit"):
        list(read_documents(huge))  # refused on its listed size, before its bytes are read


def test_build_indexes_pdf_html_docx_skips_the_broken_one_and_rebuilds_incrementally(tmp_path, settings, embedder):
    corpus, ix = _corpus(tmp_path), tmp_path / "ix"
    warnings: list[str] = []
    report = build_index(corpus, ix, settings, embedder=embedder, warn=warnings.append)
    assert (report.added, report.changed, report.removed, report.unchanged, report.documents) == (3, 0, 0, 0, 3)
    assert report.chunks == report.chunks_embedded > 3
    broken = [s for s in report.skipped if s.startswith("broken.pdf: is not a readable PDF")]
    assert len(broken) == 1 and any(w.startswith("broken.pdf: is not a readable PDF") for w in warnings)
    # the PDF with a scanned page is indexed: its warning is not counted as a skipped file
    assert report.warnings == ("udhr.pdf: page 2 has no text layer (scanned?); indexed the other 2 pages.",)
    assert len(report.skipped) == 1 and "1 file(s) skipped; 1 warning(s) on documents indexed" in report.summary()
    index = load_index(ix)
    try:
        assert index.doc_ids() == ["preamble.docx", "udhr.pdf", "web/chapter-6.htm"]
        udhr = index.document("udhr.pdf")
        assert udhr.pages == (0, udhr.text.index("Article 13"), udhr.text.index("Article 13"))  # persisted
        assert index.document("web/chapter-6.htm").date == "1945-06-26"
        assert index.document("preamble.docx").metadata["author"] == "United Nations"
        chunks = list(index.iter_chunks())
        for chunk in chunks:
            assert index.document(chunk.doc_id).text[chunk.start : chunk.end] == chunk.text
        article_13 = [c for c in chunks if c.doc_id == "udhr.pdf" and "freedom of movement" in c.text]
        assert article_13 and udhr.page_at(article_13[0].text.index("freedom") + article_13[0].start) == 3
    finally:
        index.close()
    calls = embedder.calls
    again = build_index(corpus, ix, settings, embedder=embedder, warn=lambda m: None)
    assert (again.added, again.changed, again.removed, again.unchanged, again.chunks_embedded) == (0, 0, 0, 3, 0)
    assert embedder.calls == calls
    assert any(s.startswith("broken.pdf: is not a readable PDF") for s in again.skipped)  # still reported
