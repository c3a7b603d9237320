"""The web chat: a Gradio app over an :class:`Assistant` (the only module that imports gradio).

Every piece of document text and every question reaches the page through
:func:`_text`, which escapes it, so a document holding ``<script>`` shows that
tag as text. Replies are built as one line of HTML: Markdown leaves an HTML
block alone, so document text is never read as Markdown or LaTeX either.
"""

from __future__ import annotations

import html
import os
import re
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import gradio as gr
from starlette.middleware import Middleware

from .assistant import Assistant
from .conversation import Conversation
from .countries import display, warm_up as compile_country_names
from .documents import SUFFIXES
from .facets import filter_from
from .ingest.upload import stage_uploads, uploads_allowed
from .settings import Settings
from .text import LANGUAGE_NAMES, language_of
from .types import Answer, Quote

SEED_DOC = "kazakhstan-un-preventive-diplomacy-unrcca-meeting.txt"
SEED_EXAMPLES = (
    "Where is the UNRCCA headquartered?",
    "Who is the Foreign Minister of Kazakhstan?",
    "When was UNRCCA founded?",
)
CONTEXT_CHARS = 500  # of the document shown on each side of a quote when it is opened
MAX_UPLOAD_MB = 10.0

# System fonts only: the default theme would ask for web fonts, and the page must render offline.
THEME = gr.themes.Default(font=["system-ui", "Segoe UI", "Roboto", "sans-serif"], font_mono=["ui-monospace", "monospace"])
CSS = """
.rc-reply blockquote { border-left: 4px solid #9ca3af; margin: .6em 0 .2em; padding: .2em .8em; }
.rc-reply mark, .rc-context mark { background: #fde047; color: inherit; padding: 0 .1em; font-weight: 600; }
.rc-cite, .rc-meta { font-size: .85em; opacity: .8; margin: 0 0 .4em; }
.rc-context { font-size: .9em; margin: 0 0 .8em; }
.rc-context .rc-here { background: #dbeafe; }
.rc-related { margin: .8em 0 .2em; font-size: 1em; }
"""


# --------------------------------------------------------------------------- rendering


def _text(value: str) -> str:
    """``value`` as inert HTML text on one line (a raw newline could end the HTML block)."""
    return html.escape(value, quote=True).replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")


def _marked(text: str, span: tuple[int, int] | None) -> str:
    if span is None:
        return _text(text)
    a, b = span
    return f"{_text(text[:a])}<mark>{_text(text[a:b])}</mark>{_text(text[b:])}"


def _link(url: str) -> str:
    if not re.match(r"https?://", url, re.IGNORECASE):
        return _text(url)  # never a javascript: or data: link
    return f'<a href="{_text(url)}" target="_blank" rel="noopener noreferrer">{_text(url)}</a>'


def render_context(quote: Quote, document_text: str | None, width: int = CONTEXT_CHARS) -> str:
    """The passage around ``quote`` with the quote (and its answer span) highlighted in place."""
    if document_text is None or document_text[quote.start : quote.end] != quote.text:
        return f'<span class="rc-here">{_marked(quote.text, quote.highlight)}</span>'  # the document changed since
    a, b = max(0, quote.start - width), min(len(document_text), quote.end + width)
    if a > 0:  # start and end on a word boundary
        space = document_text.find(" ", a, quote.start)
        a = space + 1 if space >= 0 else a
    if b < len(document_text):
        space = document_text.rfind(" ", quote.end, b)
        b = space if space >= 0 else b
    before, after = document_text[a : quote.start], document_text[quote.end : b]
    return (
        f"{'… ' if a > 0 else ''}{_text(before)}<span class=\"rc-here\">{_marked(quote.text, quote.highlight)}</span>"
        f"{_text(after)}{' …' if b < len(document_text) else ''}"
    )


def render_quote(quote: Quote, number: int, document_text: str | None, asked_in: str = "", score_label: str = "confidence") -> str:
    """One quote: a block quote with the answer highlighted, its source, and its passage behind a toggle.

    ``asked_in`` is the question's language: a quote in another one says which it is in.
    """
    where = [f"<cite>{_text(quote.title or quote.doc_id)}</cite>"]
    if quote.language and asked_in and quote.language != asked_in:
        where.append(f'<span class="rc-lang">quoted in {_text(LANGUAGE_NAMES.get(quote.language, quote.language))}</span>')
    where += [_text(quote.date)] if quote.date else []
    where += [_link(quote.source)] if quote.source else []
    # a related passage's score is how close the search found it, not a confidence in an answer
    where += [f"{_text(quote.doc_id)}, {f'page {quote.page}, ' if quote.page else ''}characters {quote.start}–{quote.end}", f"{score_label} {quote.score:.2f}"]
    shown, highlight = quote.display()  # reflowed for reading; the offsets above slice the stored text
    return (
        f'<blockquote class="rc-quote">[{number}] “{_marked(shown, highlight)}”</blockquote>'
        f'<p class="rc-cite">— {" · ".join(where)}</p>'
        f'<details class="rc-context"><summary>Show in context</summary><p>{render_context(quote, document_text)}</p></details>'
    )


def render_answer(answer: Answer, document_text: Callable[[str], str | None] = lambda doc_id: None) -> str:
    """An Answer as the HTML of one chat reply (one line: Markdown leaves it alone)."""
    asked_in = language_of(answer.question)
    if answer.found:
        parts = [f'<p class="rc-answer"><strong>{_text(answer.headline())}</strong> <span class="rc-meta">(confidence {answer.confidence:.2f})</span></p>']
        parts += [render_quote(q, n, document_text(q.doc_id), asked_in) for n, q in enumerate(answer.quotes, 1)]
    else:
        # no confidence beside a refusal: a number there reads as trust in something not said
        parts = [f'<p class="rc-answer"><strong>{_text(answer.headline())}</strong></p>']
        if answer.related:
            parts.append('<h4 class="rc-related">Related passages (not an answer)</h4>')
            parts += [render_quote(q, n, document_text(q.doc_id), asked_in, "relevance") for n, q in enumerate(answer.related, 1)]
    if answer.search_query:
        parts.append(f'<p class="rc-meta">Searched as: {_text(answer.search_query)}</p>')
    if answer.understood:
        parts.append(f'<p class="rc-meta rc-understood">{_text(answer.understood)}</p>')
    return f'<div class="rc-reply">{"".join(parts)}</div>'


def render_question(question: str) -> str:
    return f'<div class="rc-question">{_text(question)}</div>'




# --------------------------------------------------------------------------- uploads


def add_files(bot: Assistant, paths: Sequence[str | Path], max_bytes: int, on_progress: Callable[[int, int], None] | None = None) -> str:
    """Add the uploaded files to the bot's corpus and switch it to the updated index; returns the report as HTML.

    Questions asked meanwhile are answered from the index in use until the new one is ready.
    """
    if bot.corpus_dir is None:
        return "<p>Adding documents is off: this index does not record its corpus folder.</p>"
    staged = stage_uploads(bot.corpus_dir, paths, max_bytes)
    if not staged.added:
        return _refusals(staged.problems) or "<p>Choose one or more files first.</p>"
    names = _text(", ".join(target.name for target in staged.added))
    problems = list(staged.problems)
    try:
        result = bot.rebuild(on_progress=on_progress, warn=problems.append)
    except Exception as exc:  # the files are in the corpus: the next build indexes them
        return f"<p>Added {names} to the corpus, but the index could not be updated: {_text(str(exc))}</p>{_refusals(problems)}"
    return f"<p>Added {names}. {_text(result.summary())}. New questions use it now.</p>{_refusals(problems)}"  # with the build's own warnings


def _refusals(problems: Sequence[str]) -> str:
    return "".join(f"<p>Refused or skipped: {_text(p)}</p>" for p in problems)


# Gradio's routes that write a request's files to disk: /upload (what gr.File posts to) and
# /process_recording (audio). Both are open to any client, not only to the page's own components.
_STORING_ROUTES = ("upload", "process_recording")
_FILENAME = re.compile(rb'filename\*?=(?:"([^"\r\n]*)"|([^;\r\n]*))', re.IGNORECASE)
MAX_FILES_PER_UPLOAD = 20


class UploadGuard:
    """ASGI middleware in front of Gradio: no route stores a file unless adding documents is on.

    When uploads are off (read-only, or public without a login), every request to a
    route that stores files is refused with 403 before Gradio reads a byte of it.
    When they are on, the upload route accepts only what the panel accepts: at most
    ``MAX_FILES_PER_UPLOAD`` corpus files (documents.SUFFIXES) of at most
    ``max_bytes`` each. The body is read (bounded) and checked before Gradio
    sees it, so a refused file never reaches Gradio's temp folder.
    """

    def __init__(self, app: Any, *, uploads: bool, max_bytes: int) -> None:
        self.app = app
        self.uploads = uploads
        self.max_bytes = max_bytes

    @staticmethod
    def _storing(path: str) -> str | None:
        last = path.rstrip("/").rsplit("/", 1)[-1]
        return last if last in _STORING_ROUTES else None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        route = self._storing(scope.get("path", "")) if scope.get("type") == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        if not self.uploads or route != "upload":
            why = "adding documents is off on this server" if not self.uploads else "this server stores no recordings"
            await _plain(send, 403, f"Refused: {why}.")
            return
        limit = MAX_FILES_PER_UPLOAD * (self.max_bytes + 64 * 1024)  # the files plus their part headers
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _plain(send, 413, f"Refused: more than {MAX_FILES_PER_UPLOAD} files of {self.max_bytes / 1e6:g} MB.")
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await _plain(send, 413, f"Refused: more than {MAX_FILES_PER_UPLOAD} files of {self.max_bytes / 1e6:g} MB.")
                return
        names = _part_filenames(bytes(body), headers.get(b"content-type", b""))
        if len(names) > MAX_FILES_PER_UPLOAD:
            await _plain(send, 413, f"Refused: at most {MAX_FILES_PER_UPLOAD} files at once.")
            return
        wrong = [n for n in names if os.path.splitext(n)[1].lower() not in SUFFIXES]
        if wrong:
            await _plain(send, 415, f"Refused: only {', '.join(SUFFIXES)} files can be added ({wrong[0][:80]!r} is not one).")
            return
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


_BOUNDARY = re.compile(rb'boundary="?([^";\r\n]+)"?', re.IGNORECASE)


def _part_filenames(body: bytes, content_type: bytes) -> list[str]:
    """The file names of a multipart body's parts, read from each part's headers only.

    A file's own bytes may say ``filename="x.exe"`` (a .txt about uploads): only the
    headers between a boundary and the blank line after it name a file.
    """
    found = _BOUNDARY.search(content_type)
    if found is None:
        return []  # not multipart: Gradio refuses it, and nothing is stored
    names = []
    for part in body.split(b"--" + found.group(1))[1:]:
        head = part.split(b"\r\n\r\n", 1)[0]
        names += [(m.group(1) if m.group(1) is not None else m.group(2)).decode("utf-8", "replace").strip() for m in _FILENAME.finditer(head)]
    return names


async def _plain(send: Callable, status: int, text: str) -> None:
    data = text.encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


# --------------------------------------------------------------------------- the app


def _examples(bot: Assistant) -> list[str]:
    return list(SEED_EXAMPLES) if SEED_DOC in bot.index.doc_ids() else []


def build_app(bot: Assistant, *, uploads: bool = True, max_upload_mb: float = MAX_UPLOAD_MB, examples: Sequence[str] | None = None) -> gr.Blocks:
    """The chat page over ``bot``: the chat, the index's state, and (when ``uploads``) the panel to add documents.

    Its API: ``/ask`` (question, history of earlier questions) -> the Answer as a dict.
    """
    examples = _examples(bot) if examples is None else list(examples)

    def document_text(doc_id: str) -> str | None:
        try:
            return bot.document(doc_id).text
        except Exception:  # removed by a rebuild meanwhile: the quote is shown alone
            return None

    def index_summary() -> str:
        info = bot.index.info()
        return f"{info.documents} documents, {info.chunks} passages indexed."

    def ask(question: str, history: list[str] | None = None, where: list[str] | None = None, since: str = "", until: str = "") -> dict:
        """Answer a question with verbatim quotes from the documents.

        Args:
            question: the question.
            history: the earlier questions of the conversation, oldest first (for follow-ups):
                the last two are answered again, in order, to learn what a follow-up leans on.
            where: filters as FIELD=VALUE strings (country=KAZ, source=un.org, path=GLOB, any metadata field).
            since, until: only documents dated within these years or ISO dates (inclusive).

        Returns:
            The Answer as a dict: question, found, short (the short answer, '' when there is
            none), confidence, quotes and related (each with doc_id, title, source, date, start,
            end, text, score, highlight), search_query, understood.
        """
        try:  # the assistant checks the history's shape: list() here would split a string into letters
            if isinstance(where, str):
                raise ValueError("where must be a list of FIELD=VALUE strings, not a single string.")
            filters = filter_from(where or (), since=since or "", until=until or "")
            return Conversation(bot, [] if history is None else history, filters=filters or None).ask(question).as_dict()
        except ValueError as exc:
            raise gr.Error(str(exc)) from None

    def show_question(message: str, chat: list) -> tuple[str, list, str]:
        if not message.strip():
            return "", chat, ""
        return "", chat + [{"role": "user", "content": render_question(message)}], message

    def respond(question: str, chat: list, turns: list, countries: list[str] | None = None, since: str = "", until: str = "") -> tuple[list, list]:
        if not question.strip():
            return chat, turns
        try:
            filters = filter_from([f"country={c}" for c in countries or ()], since=str(since or "").strip(), until=str(until or "").strip())
            answer = bot.answer(question, history=turns[-2:], filters=filters or None)
        except ValueError as exc:
            return chat + [{"role": "assistant", "content": f'<div class="rc-reply"><p>{_text(str(exc))}</p></div>'}], turns
        return chat + [{"role": "assistant", "content": render_answer(answer, document_text)}], turns + [answer]

    # delete_cache: uploaded files left in Gradio's temp folder go after an hour (they were copied to the corpus)
    with gr.Blocks(title="regional-chat", analytics_enabled=False, fill_height=True, delete_cache=(3600, 3600)) as app:
        gr.Markdown("## regional-chat\nAnswers quoted word for word from the documents, with their source.")
        turns = gr.State([])  # this conversation's Answers, for follow-up questions
        asked = gr.State("")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Chat",
                    elem_id="chat",
                    height=560,
                    sanitize_html=True,  # second line of defence: everything shown is escaped already
                    allow_tags=False,
                    latex_delimiters=[],  # "$5 million ... $3 million" is money, not LaTeX
                    feedback_options=None,
                    buttons=["copy"],
                    examples=[{"text": q} for q in examples] or None,
                    placeholder="Ask a question about the documents. Every answer is a quote you can check.",
                )
                box = gr.Textbox(elem_id="question", show_label=False, placeholder="Ask a question…", submit_btn="Ask", autofocus=True)
            with gr.Column(scale=1, min_width=260):
                status = gr.Markdown(index_summary, elem_id="index-status")  # a function: counted again on every page load
                catalogue = bot.index.catalogue
                years = catalogue.years()
                with gr.Accordion("Filters", open=False, elem_id="filters"):
                    only_countries = gr.Dropdown(
                        choices=[(f"{display(c)} ({c})", c) for c in catalogue.countries()],
                        multiselect=True,
                        label="Countries (the documents' metadata)",
                        elem_id="filter-countries",
                    )
                    only_since = gr.Textbox(label=f"From year{f' ({years[0]}–{years[-1]} indexed)' if years else ''}", elem_id="filter-since", max_lines=1)
                    only_until = gr.Textbox(label="Until year", elem_id="filter-until", max_lines=1)
                with gr.Accordion("Add documents", open=uploads, elem_id="uploads"):
                    if uploads:
                        files = gr.File(label=f"{', '.join(SUFFIXES)} files, up to {max_upload_mb:g} MB each", file_count="multiple", file_types=list(SUFFIXES), elem_id="upload-files")
                        add = gr.Button("Add to the corpus and update the index", elem_id="upload-add")
                        report = gr.HTML(elem_id="upload-report")
                    else:
                        gr.Markdown("Adding documents is off: the server is read-only, or it listens beyond this computer without a login (`REGIONAL_CHAT_AUTH`).")

        private: dict[str, Any] = {"api_visibility": "private"}
        box.submit(show_question, [box, chatbot], [box, chatbot, asked], queue=False, **private).then(
            respond, [asked, chatbot, turns, only_countries, only_since, only_until], [chatbot, turns], **private
        )

        def pick_example(chat: list, evt: gr.SelectData) -> tuple[str, list, str]:
            return show_question(evt.value["text"], chat)

        chatbot.example_select(pick_example, [chatbot], [box, chatbot, asked], queue=False, **private).then(
            respond, [asked, chatbot, turns, only_countries, only_since, only_until], [chatbot, turns], **private
        )
        chatbot.clear(lambda: [], None, turns, queue=False, **private)
        gr.api(ask, api_name="ask")

        if uploads:

            def add_documents(paths: list[str] | None, progress=gr.Progress()) -> tuple[str, str, None]:
                def on_progress(done: int, total: int) -> None:
                    progress((done, total), desc="embedding", unit="documents")

                return add_files(bot, paths or [], int(max_upload_mb * 1e6), on_progress), index_summary(), None

            add.click(add_documents, [files], [report, status, files], concurrency_limit=1, concurrency_id="rebuild", **private)
    app.rc_uploads = uploads  # read by launch(): the upload route is refused when this is False
    return app


def launch(app: gr.Blocks, *, host: str = "127.0.0.1", port: int = 7860, auth: Any = None, concurrency: int = 4,
           max_upload_mb: float = MAX_UPLOAD_MB, block: bool = True, quiet: bool = False) -> str:
    """Serve ``app``; returns its local URL (with ``block=False`` the server runs in a thread until ``app.close()``)."""
    app.queue(default_concurrency_limit=concurrency)  # this many questions are answered at once; the rest wait in line
    _, url, _ = app.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        max_file_size=int(max_upload_mb * 1e6),  # bytes; ingest.upload.add_upload says the same limit in words
        # the guard in front of every route that stores files (see UploadGuard); build_app says whether uploads are on
        app_kwargs={"middleware": [Middleware(UploadGuard, uploads=getattr(app, "rc_uploads", False), max_bytes=int(max_upload_mb * 1e6))]},
        num_workers=0,  # no separate static-file workers: every upload passes through the guard
        prevent_thread_lock=not block,
        quiet=quiet,
        share=False,
        show_error=True,
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
        footer_links=["api"],
        theme=THEME,
        css=CSS,
    )
    return url


def serve(bot: Assistant, settings: Settings, *, host: str = "127.0.0.1", port: int = 7860,
          read_only: bool = False, auth: Any = None, concurrency: int = 4, max_upload_mb: float = MAX_UPLOAD_MB) -> None:
    """Serve the chat from ``bot`` (see :func:`regional_chat.assistant.serving_assistant`) until interrupted.

    When ``bot`` answers with another engine than ``settings.engine`` (the numpy one a server starts with),
    the reader on ``settings.engine`` is loaded in the background and takes over (see :func:`_switch_engine`).
    """
    if bot.settings.engine != settings.engine:
        threading.Thread(target=_switch_engine, args=(bot, settings), name="load-reader", daemon=True).start()
    uploads = uploads_allowed(host, read_only, auth)
    if not uploads and not read_only:
        print(f"adding documents is off: {host} is not a loopback address and REGIONAL_CHAT_AUTH is not set.", flush=True)
    app = build_app(bot, uploads=uploads, max_upload_mb=max_upload_mb)
    launch(app, host=host, port=port, auth=auth, concurrency=concurrency, max_upload_mb=max_upload_mb)


FASTER_ENGINE_AFTER = 20.0


def _switch_engine(bot: Assistant, settings: Settings) -> None:
    """Load the reader on ``settings.engine`` and hand it to ``bot`` (served questions go on meanwhile)."""
    from .assistant import make_answerer

    bot.answered.wait(FASTER_ENGINE_AFTER)  # not while the first question is being answered: it would wait on the import
    try:
        answerer = make_answerer(settings)
        answerer.reader.warm_up()
    except Exception as exc:  # noqa: BLE001 - the numpy reader keeps answering; say why it stays
        print(f"warning: the {settings.engine} reader could not be loaded ({exc}); answering with the numpy one.", flush=True)
        return
    bot.use_answerer(answerer)
    print(f"answering with the {settings.engine} reader from now on.", flush=True)
    compile_country_names()  # every alias compiled now: no question waits on compiling the ones it names


def parse_auth(value: str | None) -> list[tuple[str, str]] | None:
    """``"user:password[,user2:password2]"`` (from REGIONAL_CHAT_AUTH) -> Gradio's auth list, or None."""
    if not value:
        return None
    pairs = []
    for item in value.split(","):
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise ValueError("REGIONAL_CHAT_AUTH must be user:password (several separated by commas).")
        pairs.append((user, password))
    return pairs
