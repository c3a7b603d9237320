"""The web chat: rendering and upload checks, the API through gradio_client, and a real browser.

The browser test drives Debian's chromium with Playwright against `python app.py`
run as a subprocess with the real model on the shipped article; its screenshot is
saved to $TMPDIR/regional-chat-test-artifacts/ (or $RC_TEST_ARTIFACTS; the README's docs/screenshot.png is one).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import pytest

from conftest import FIXTURES, ROOT, SEED
from regional_chat import web
from regional_chat.assistant import Assistant
from regional_chat.build import build_index
from regional_chat.settings import Settings
from regional_chat.types import Answer, Quote

pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")  # pandas deprecations inside gradio's queue

CHROMIUM = Path("/usr/bin/chromium")
# screenshots go outside the checkout; RC_TEST_ARTIFACTS=docs/ (for example) keeps them where you say
ARTIFACTS = Path(os.environ.get("RC_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "regional-chat-test-artifacts")
EVIL = """---
title: Tulip festival <script>window.__pwned = 1</script> notice
country: KGZ
date: 2024-03-15
---
# Tulip festival notice

The tulip festival of Osh <script>window.__pwned = 1; alert(1)</script> is held every April in the city park \
<img src=x onerror="window.__pwned = 2; alert(2)">. Entry costs $5 and $$x^2$$ is *not italic*.
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _quote(text: str = "Ashgabat is the <b>seat</b>.", highlight=(0, 8), start: int = 10) -> Quote:
    return Quote(doc_id="a.md", title="T <i>x</i>", source="https://example.org/a?b=1&c=2", start=start, end=start + len(text),
                 text=text, score=0.75, highlight=highlight, date="2024-03-14")


# --------------------------------------------------------------------------- rendering


def test_reply_shows_answer_quote_highlight_source_and_confidence_as_inert_html():
    answer = Answer(question="q", found=True, confidence=0.91, quotes=(_quote(),))
    html = web.render_answer(answer, lambda doc_id: "0123456789Ashgabat is the <b>seat</b>. More text follows.")
    assert "\n" not in html  # one HTML block: Markdown does not touch it
    assert "<b>" not in html and "<i>" not in html
    assert "&lt;b&gt;seat&lt;/b&gt;" in html and "T &lt;i&gt;x&lt;/i&gt;" in html
    assert "<mark>Ashgabat</mark>" in html
    assert '<a href="https://example.org/a?b=1&amp;c=2"' in html and "2024-03-14" in html
    assert "confidence 0.91" in html and "confidence 0.75" in html
    assert "Show in context" in html and "More text follows." in html


def test_a_quote_in_another_language_than_the_question_says_which():
    from dataclasses import replace

    quote = replace(_quote(), language="english")
    russian = web.render_answer(Answer(question="Где находится центр?", found=True, confidence=0.9, quotes=(quote,)))
    english = web.render_answer(Answer(question="Where is the centre?", found=True, confidence=0.9, quotes=(quote,)))
    assert "quoted in English" in russian and "quoted in" not in english


def test_unanswered_reply_says_so_and_lists_related_passages_apart():
    answer = Answer(question="q", found=False, confidence=0.1,
                    related=(_quote(highlight=None),))
    html = web.render_answer(answer)
    assert "do not answer" in html
    assert html.index("Related passages (not an answer)") < html.index("rc-quote")
    # a refusal shows no confidence, and a related passage's score is called what it is
    assert "confidence" not in html and "relevance 0.75" in html


def test_context_highlights_the_quote_in_place_and_falls_back_when_the_document_changed():
    text = "First sentence here. Ashgabat is the <b>seat</b>. Last one."
    q = _quote(start=text.index("Ashgabat"))
    html = web.render_context(q, text)
    assert html.startswith("First sentence here. <span class=\"rc-here\"><mark>Ashgabat</mark>")
    assert html.endswith("</span> Last one.")
    assert web.render_context(q, "something else entirely") == '<span class="rc-here"><mark>Ashgabat</mark> is the &lt;b&gt;seat&lt;/b&gt;.</span>'


def test_source_links_are_only_http():
    html = web.render_answer(Answer("q", True, 0.5, quotes=(Quote("a", "t", "javascript:alert(1)", 0, 1, "x", 0.5),)))
    assert "<a " not in html and "javascript:alert(1)" in html


# --------------------------------------------------------------------------- the login


def test_parse_auth():
    assert web.parse_auth("ann:secret,bob:pw") == [("ann", "secret"), ("bob", "pw")]
    with pytest.raises(ValueError):
        web.parse_auth("ann")


def test_importing_the_web_module_writes_no_environment_variable():
    # telemetry and gradio's version check are off through Blocks(analytics_enabled=False), not a global
    probe = "import os; before = dict(os.environ); import regional_chat.web; assert dict(os.environ) == before, set(os.environ) ^ set(before)"
    env = {k: v for k, v in os.environ.items() if k != "GRADIO_ANALYTICS_ENABLED"}
    subprocess.run([sys.executable, "-c", probe], env=env, check=True, timeout=120)


def test_the_app_sends_no_telemetry(bot):
    app = web.build_app(bot)
    assert app.analytics_enabled is False


# --------------------------------------------------------------------------- the API (hashing embedder, server in a thread)


@pytest.fixture(scope="module")
def bot(tmp_path_factory) -> Assistant:
    root = tmp_path_factory.mktemp("web")
    shutil.copytree(FIXTURES / "corpus", root / "corpus")
    settings = Settings(model="hashing:64", chunk_tokens=40, chunk_overlap=1)
    build_index(root / "corpus", root / "index", settings, warn=lambda m: None)
    return Assistant.load(root / "index", settings, corpus_dir=root / "corpus")


@pytest.fixture(scope="module")
def server(bot):
    app = web.build_app(bot)
    url = web.launch(app, port=_free_port(), block=False, quiet=True, concurrency=4)
    try:
        yield url
    finally:
        app.close()


def _json(answer: Answer) -> dict:
    return json.loads(json.dumps(answer.as_dict()))


def test_api_returns_the_python_answer(bot, server):
    from gradio_client import Client

    client = Client(server, verbose=False)
    first = "Where did the ministers meet in March 2024?"
    got = client.predict(first, [], api_name="/ask")
    assert got == _json(bot.answer(first))
    assert set(got) == {"question", "found", "short", "confidence", "quotes", "related", "search_query", "understood"}
    for q in got["quotes"] + got["related"]:
        assert bot.document(q["doc_id"]).text[q["start"] : q["end"]] == q["text"]
    follow = "Where is the next one?"
    assert client.predict(follow, [first], api_name="/ask") == _json(bot.answer(follow, history=[bot.answer(first)]))


def test_api_refuses_an_empty_question_with_the_reason(server):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="the question is empty"):
        Client(server, verbose=False).predict("   ", [], api_name="/ask")


def test_twenty_concurrent_questions_all_succeed(bot, server):
    from gradio_client import Client

    questions = [
        "Where did the ministers meet?", "Who chaired the water meeting?", "Which reservoirs share flow data?",
        "Where is the next water meeting?", "Where did Kyrgyzstan open a border post?",
    ] * 4
    expected = {q: _json(bot.answer(q)) for q in set(questions)}

    def ask(question: str) -> tuple[dict, float]:
        started = time.perf_counter()
        result = Client(server, verbose=False).predict(question, [], api_name="/ask")  # a client per user
        return result, time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(ask, questions))
    wall = time.perf_counter() - started
    latencies = [t for _, t in results]
    print(f"\n20 concurrent questions: {wall:.2f} s in all; per question median {statistics.median(latencies):.2f} s, "
          f"max {max(latencies):.2f} s")
    assert [r for r, _ in results] == [expected[q] for q in questions]


def test_questions_asked_while_documents_are_added_all_succeed(tmp_path):
    from gradio_client import Client

    shutil.copytree(FIXTURES / "corpus", tmp_path / "corpus")
    settings = Settings(model="hashing:64", chunk_tokens=40, chunk_overlap=1)
    build_index(tmp_path / "corpus", tmp_path / "index", settings, warn=lambda m: None)
    own = Assistant.load(tmp_path / "index", settings, corpus_dir=tmp_path / "corpus")
    app = web.build_app(own)
    url = web.launch(app, port=_free_port(), block=False, quiet=True)
    stop, answered, errors = threading.Event(), [], []

    def keep_asking() -> None:
        client = Client(url, verbose=False)
        while not stop.is_set():
            try:
                answered.append(client.predict("Who chaired the water meeting?", [], api_name="/ask"))
            except Exception as exc:  # noqa: BLE001 - any failure is what the test looks for
                errors.append(exc)

    askers = [threading.Thread(target=keep_asking) for _ in range(3)]
    try:
        for t in askers:
            t.start()
        while len(answered) < 3 and not errors:
            time.sleep(0.05)
        new = tmp_path / "upload" / "sturgeon.md"
        new.parent.mkdir()
        new.write_text("# Sturgeon festival\n\nThe Caspian sturgeon festival takes place in Atyrau every September.\n", encoding="utf-8")
        before = len(answered)
        report = web.add_files(own, [new, tmp_path / "corpus" / "water.md"], 100_000)
        assert "Added sturgeon.md, water-2.md." in report and "1 unchanged" not in report
        time.sleep(0.5)
        assert len(answered) > before
        got = Client(url, verbose=False).predict("Where does the Caspian sturgeon festival take place?", [], api_name="/ask")
        assert "sturgeon.md" in {q["doc_id"] for q in got["quotes"] + got["related"]}
    finally:
        stop.set()
        for t in askers:
            t.join()
        app.close()
    assert errors == [] and len(answered) > 3


def _post_files(url: str, files: list[tuple[str, bytes]]):
    import httpx

    return httpx.post(url.rstrip("/") + "/gradio_api/upload", files=[("files", (name, data)) for name, data in files], timeout=30)


def _stored(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_no_route_stores_a_file_when_uploads_are_off(bot, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    app = web.build_app(bot, uploads=False)
    url = web.launch(app, port=_free_port(), block=False, quiet=True)
    try:
        folder = Path(app.server_app.uploaded_file_dir)
        before = _stored(folder)
        noise = os.urandom(2_000_000)
        for files in ([("noise.bin", noise)], [("notes.txt", b"A plain corpus file.\n")]):
            response = _post_files(url, files)
            assert response.status_code == 403 and "adding documents is off" in response.text
        import httpx

        recording = httpx.post(url.rstrip("/") + "/gradio_api/process_recording", files=[("files", ("a.wav", noise))], timeout=30)
        assert recording.status_code == 403
        assert _stored(folder) == before
    finally:
        app.close()


def test_the_upload_route_takes_only_corpus_types_when_uploads_are_on(server):
    refused = _post_files(server, [("noise.bin", os.urandom(100_000))])
    assert refused.status_code == 415 and "only .txt, .md, .jsonl, .pdf, .html, .htm, .docx files" in refused.text
    mixed = _post_files(server, [("ok.txt", b"fine\n"), ("evil.exe", b"MZ")])
    assert mixed.status_code == 415
    mentions = _post_files(server, [("howto.txt", b'Attach it as filename="report.exe" in the form.\n')])
    assert mentions.status_code == 200  # a name inside a file's text is not a part's name
    accepted = _post_files(server, [("notes.txt", b"A plain corpus file.\n")])
    assert accepted.status_code == 200
    stored = accepted.json()
    assert len(stored) == 1 and Path(stored[0]).name == "notes.txt" and Path(stored[0]).read_bytes() == b"A plain corpus file.\n"


def test_api_refuses_a_string_as_history(server):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="history must be a list"):
        Client(server, verbose=False).predict("Where is the next one?", "Where did the ministers meet?", api_name="/ask")


def test_read_only_app_has_no_upload_panel_or_endpoint(bot):
    app = web.build_app(bot, uploads=False)
    ids = {getattr(block, "elem_id", None) for block in app.blocks.values()}
    assert "upload-files" not in ids and "upload-add" not in ids
    assert "add_documents" not in {fn.name for fn in app.fns.values()}


# --------------------------------------------------------------------------- a real browser (real model)


@pytest.fixture(scope="module")
def app_process(tmp_path_factory):
    """`python app.py` on a copy of the shipped corpus plus a hostile document, on a free port."""
    root = tmp_path_factory.mktemp("browser")
    (root / "corpus").mkdir()
    shutil.copy(SEED, root / "corpus" / SEED.name)
    (root / "corpus" / "tulips.md").write_text(EVIL, encoding="utf-8")
    port = _free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(root / "gradio-tmp"), "PYTHONUNBUFFERED": "1"}
    log = (root / "server.log").open("w")
    cmd = [sys.executable, str(ROOT / "app.py"), "--corpus", "corpus", "--index", "index", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{(root / 'server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not answer within 300 s:\n{(root / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_chat_in_a_real_browser(app_process, browser, tmp_path):
    from playwright.sync_api import expect

    url, root = app_process
    page = browser.new_page(viewport={"width": 1280, "height": 960})
    outside, dialogs = [], []

    def route(r):  # the page must work offline: every request stays on this machine
        if urlparse(r.request.url).hostname in ("127.0.0.1", "localhost") or r.request.url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    replies = page.locator("#chat .rc-reply")

    def ask(question: str):
        n = replies.count()
        page.locator("#question textarea").fill(question)
        page.locator("#question textarea").press("Enter")
        expect(replies).to_have_count(n + 1, timeout=90_000)
        return replies.nth(n)

    page.goto(url)
    example = page.locator("#chat").get_by_text("Where is the UNRCCA headquartered?")  # examples on the empty page
    example.click()
    expect(replies).to_have_count(1, timeout=90_000)
    reply = replies.first
    expect(reply.locator("blockquote.rc-quote").first).to_be_visible()
    expect(reply.locator(".rc-quote mark").first).to_contain_text("Ashgabat")
    expect(reply.locator(".rc-cite").first).to_contain_text("Kazakhstan Prioritizes Peace")
    expect(reply).to_contain_text("confidence")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-answer.png"))
    reply.locator(".rc-context summary").first.click()  # the quote in its passage
    context = reply.locator(".rc-context .rc-here").first
    expect(context).to_be_visible()
    expect(context.locator("mark")).to_contain_text("Ashgabat")

    follow = ask("When was it founded?")  # leans on the previous turn
    expect(follow.locator(".rc-meta").last).to_contain_text("UNRCCA")

    # a Russian question on the English article (the default encoder, e5, reads it): the English quote, labelled
    russian = ask("Где находится штаб-квартира UNRCCA?")
    expect(russian.locator("blockquote.rc-quote").first).to_contain_text("headquarters situated in Ashgabat")
    expect(russian.locator(".rc-cite").first).to_contain_text("quoted in English")

    unanswered = ask("What is the population of Mongolia?")
    expect(unanswered).to_contain_text("do not answer")
    expect(unanswered).to_contain_text("Related passages")

    hostile = ask("When is the tulip festival of Osh held?")
    expect(hostile).to_contain_text("<script>window.__pwned = 1; alert(1)</script>")  # shown, as text
    assert page.locator("#chat script").count() == 0 and hostile.locator("img").count() == 0
    assert page.evaluate("window.__pwned") is None and dialogs == []

    upload = tmp_path / "sturgeon festival.md"
    upload.write_text("# Sturgeon festival\n\nThe Caspian sturgeon festival takes place in Atyrau every September.\n", encoding="utf-8")
    page.locator("#upload-files input[type=file]").set_input_files(str(upload))
    expect(page.locator("#upload-files")).to_contain_text("sturgeon")
    page.locator("#upload-add").click()
    expect(page.locator("#upload-report")).to_contain_text("Added sturgeon-festival.md", timeout=120_000)
    expect(page.locator("#index-status")).to_contain_text("3 documents")
    assert (root / "corpus" / "sturgeon-festival.md").is_file()
    expect(ask("Where does the Caspian sturgeon festival take place?")).to_contain_text("Atyrau")

    # the filter panel offers what the metadata holds (only the tulip notice has a country and a date),
    # and a filter applies inside search: with Kyrgyzstan chosen the article's answer is gone
    page.locator("#filters").get_by_text("Filters").click()
    expect(page.locator("#filter-since")).to_contain_text("2024–2024 indexed")
    page.locator("#filter-countries input").click()
    page.get_by_role("option", name="Kyrgyzstan (KGZ)").click()
    page.locator("#question textarea").click()  # closes the option list
    only = ask("Where is the UNRCCA headquartered?")
    expect(only).to_contain_text("Only Kyrgyzstan")
    expect(only).to_contain_text("do not answer")
    expect(only).not_to_contain_text("Ashgabat")
    expect(ask("When is the tulip festival of Osh held?")).to_contain_text("April")
    page.locator("#filter-until textarea, #filter-until input").first.fill("2020")
    expect(ask("When is the tulip festival of Osh held?")).to_contain_text("do not answer")  # its 2024 date is outside

    page.screenshot(path=str(ARTIFACTS / "web-session.png"), full_page=True)
    assert outside == [], f"the page asked for things off this machine: {outside}"
    page.close()
