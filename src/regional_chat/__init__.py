"""regional-chat: questions answered with verbatim quotes from your documents, offline.

Importing this package loads nothing heavy: no model, no index, no web
framework. The names below are imported on first use.

    >>> from regional_chat import build_index, Assistant
    >>> build_index("corpus", "index")                       # doctest: +SKIP
    >>> Assistant.load("index").answer("Where is the UNRCCA headquartered?").short  # doctest: +SKIP
    'Ashgabat'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Settings": ("settings", "Settings"),
    "Document": ("types", "Document"),
    "Chunk": ("types", "Chunk"),
    "Hit": ("types", "Hit"),
    "Quote": ("types", "Quote"),
    "Answer": ("types", "Answer"),
    "Filter": ("types", "Filter"),
    "BuildReport": ("types", "BuildReport"),
    "build_index": ("build", "build_index"),
    "load_index": ("store", "load_index"),
    "Index": ("store.folder", "Index"),
    "Assistant": ("assistant", "Assistant"),
    "answer": ("assistant", "answer"),
    "Conversation": ("conversation", "Conversation"),
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from .assistant import Assistant, answer
    from .conversation import Conversation
    from .store.folder import Index
    from .build import build_index
    from .store import load_index
    from .settings import Settings
    from .types import Answer, BuildReport, Chunk, Document, Filter, Hit, Quote


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'regional_chat' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(f".{module_name}", __name__), attr)
    globals()[name] = value
    return value
