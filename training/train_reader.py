"""Train the extractive reader from ../shared/data and write the shipped weights.

    python training/rebuild.py                           # the shipped reader: both stages, then the calibrations
    python training/train_reader.py --epochs 1 --out /tmp/r   # one stage (training/README.md lists the two)
    python training/train_reader.py --limit 64 --steps 6 --out /tmp/r   # a smoke run
    python training/train_reader.py --backbone e5 --epochs 1 --out /tmp/r --stop-after 300   # in sittings:
    python training/train_reader.py --backbone e5 --epochs 1 --out /tmp/r --resume           # ... and on

A long CPU run keeps a checkpoint (``<out>/checkpoint.pt``: weights, optimiser, schedule, random
states, where it stood in the epoch) every ``--checkpoint-every`` steps, on Ctrl-C or SIGTERM, and
at ``--stop-after``; ``--resume`` goes on from it with the same arguments, and ends with the weights
a run without the break would have written (tests/test_training.py checks this on the CPU).

Data (nothing of it is committed; its SHA-256 goes into reader.json):
  * SQuAD v1.1 dev, even-indexed articles, except the four that are odd in the SQuAD v2.0 tune
    half (so the odd halves of both files stay held out for the figures in docs/QUALITY.md);
  * the unanswerable questions of the SQuAD v2.0 tune half on those same articles;
  * the SQuAD v1.1 and v2.0 train fragments (deduplicated by question id).
Every answerable question is also read against ``--distractors`` other paragraphs of its
pool, the best BM25 matches for it, labelled no-answer. The loss is the usual per-window
start/end cross-entropy (no-answer = the first token) plus a shared-normalisation term: one
softmax over the context tokens of all of a question's windows, so span scores compare across
passages the way the assistant uses them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from regional_chat.reading import model as reader_model  # noqa: E402
from regional_chat.reading.windows import Window, make_windows, pad_batch  # noqa: E402

DEFAULT_OUT = ROOT / "src" / "regional_chat" / "reading" / "weights"


@dataclass
class Example:
    qid: str
    question: str
    context: str
    answer_start: int | None  # None: no answer in this context
    answer_text: str
    title: str


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _squad(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))["data"]


def training_examples(data: Path) -> tuple[list[Example], list[str], dict[str, list[str]]]:
    """(answerable and unanswerable examples with their gold paragraph, files used, paragraph pool per source)."""
    v11 = _squad(data / "squad-dev-v1.1.json")
    v20 = _squad(data / "squad-dev-v2.0-tune-half.json")
    v20_odd = {a["title"] for i, a in enumerate(v20) if i % 2 == 1}
    train_titles = {a["title"] for i, a in enumerate(v11) if i % 2 == 0} - v20_odd
    files = ["squad-dev-v1.1.json", "squad-dev-v2.0-tune-half.json"]
    out: list[Example] = []
    seen: set[str] = set()
    pools: dict[str, list[str]] = {"dev": [], "train": []}

    def add(articles, pool: str, answerable_only: bool, unanswerable_only: bool = False, titles=None) -> None:
        for art in articles:
            if titles is not None and art["title"] not in titles:
                continue
            for para in art["paragraphs"]:
                ctx = para["context"]
                if ctx not in pools[pool]:
                    pools[pool].append(ctx)
                for qa in para["qas"]:
                    impossible = bool(qa.get("is_impossible")) or not qa.get("answers")
                    if qa["id"] in seen or (answerable_only and impossible) or (unanswerable_only and not impossible):
                        continue
                    seen.add(qa["id"])
                    if impossible:
                        out.append(Example(qa["id"], qa["question"], ctx, None, "", art["title"]))
                    else:
                        a = qa["answers"][0]
                        out.append(Example(qa["id"], qa["question"], ctx, int(a["answer_start"]), a["text"], art["title"]))

    add(v11, "dev", answerable_only=True, titles=train_titles)
    add(v20, "dev", answerable_only=False, unanswerable_only=True, titles=train_titles)
    frag = data / "squad-train-fragments"
    for name in ("train-v2.0-fragment.json", "train-v1.1-fragment.json"):
        if (frag / name).is_file():
            add(_squad(frag / name), "train", answerable_only=False)
            files.append(f"squad-train-fragments/{name}")
    return out, files, pools


def add_distractors(examples: list[Example], pools: dict[str, list[str]], per_question: int, seed: int) -> list[Example]:
    """For every answerable example, the ``per_question`` best-BM25 other paragraphs of its pool, labelled no-answer."""
    import bm25s

    if per_question <= 0:
        return []
    by_ctx = {}
    for pool, texts in pools.items():
        for t in texts:
            by_ctx[t] = pool
    out = []
    for pool, texts in pools.items():
        if len(texts) < 2:
            continue  # no other paragraph to distract with
        retriever = bm25s.BM25()
        retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
        mine = [e for e in examples if by_ctx.get(e.context) == pool and e.answer_start is not None]
        if not mine:
            continue
        q_tokens = bm25s.tokenize([e.question for e in mine], stopwords="en", show_progress=False)
        k = min(per_question + 1, len(texts))
        docs, _ = retriever.retrieve(q_tokens, k=k, show_progress=False, n_threads=1)
        for e, row in zip(mine, docs):
            picked = [texts[int(i)] for i in row if texts[int(i)] != e.context][:per_question]
            for ctx in picked:
                if e.answer_text and e.answer_text in ctx:
                    continue  # the answer's words sit in this paragraph too: not a clean negative
                out.append(Example(e.qid, e.question, ctx, None, "", e.title))
    return out


def label(window: Window, ex: Example) -> tuple[int, int]:
    """Token positions of the answer in ``window``, or (0, 0) when the window does not hold all of it."""
    if ex.answer_start is None:
        return 0, 0
    a, b = ex.answer_start, ex.answer_start + len(ex.answer_text)
    ctx = [i for i, (s, e) in enumerate(window.offsets) if s >= 0]
    if not ctx or window.offsets[ctx[0]][0] > a or window.offsets[ctx[-1]][1] < b:
        return 0, 0
    start = next(i for i in ctx if window.offsets[i][1] > a)
    end = next(i for i in reversed(ctx) if window.offsets[i][0] < b)
    return (start, end) if start <= end else (0, 0)


@dataclass
class Feature:
    qid: str
    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...]
    context_mask: np.ndarray  # bool per token: a context token
    start: int
    end: int


def featurise(tokenizer, examples: list[Example], max_len: int, stride: int) -> list[Feature]:
    feats = []
    for ex in examples:
        for w in make_windows(tokenizer, ex.question, [ex.context], max_len=max_len, stride=stride):
            s, e = label(w, ex)
            mask = np.array([o[0] >= 0 for o in w.offsets], dtype=bool)
            feats.append(Feature(ex.qid, w.input_ids, w.token_type_ids, mask, s, e))
    return feats


def batches(feats: list[Feature], windows_per_batch: int, rng: random.Random) -> list[list[Feature]]:
    """Batches of whole questions (all windows of a question together, for the shared softmax), similar lengths together."""
    groups: dict[str, list[Feature]] = {}
    for f in feats:
        groups.setdefault(f.qid, []).append(f)
    qids = list(groups)
    rng.shuffle(qids)
    out: list[list[Feature]] = []
    # sort within blocks of ~50 batches by length: less padding, still shuffled
    block = windows_per_batch * 50
    i = 0
    while i < len(qids):
        chunk, n = [], 0
        while i < len(qids) and n < block:
            chunk.append(qids[i])
            n += len(groups[qids[i]])
            i += 1
        chunk.sort(key=lambda q: max(len(f.input_ids) for f in groups[q]))
        cur: list[Feature] = []
        for q in chunk:
            if cur and len(cur) + len(groups[q]) > windows_per_batch:
                out.append(cur)
                cur = []
            cur.extend(groups[q])
        if cur:
            out.append(cur)
    rng.shuffle(out)
    return out


def collate(batch: list[Feature], pad_id: int):
    import torch

    ids, types, att = pad_batch(batch, pad_id)  # the reader pads the same way when serving
    ctx = torch.zeros(ids.shape, dtype=torch.bool)
    for i, f in enumerate(batch):
        ctx[i, : len(f.input_ids)] = torch.from_numpy(f.context_mask)
    starts = torch.tensor([f.start for f in batch])
    ends = torch.tensor([f.end for f in batch])
    return ids, types, att, ctx, starts, ends


def loss_of(start_logits, end_logits, ctx, starts, ends, qids: list[str], shared_weight: float):
    """Per-window cross-entropy plus the shared softmax over all windows of each answerable question."""
    import torch
    import torch.nn.functional as F

    allowed = ctx.clone()
    allowed[:, 0] = True  # the no-answer position
    neg = torch.finfo(start_logits.dtype).min
    s = start_logits.masked_fill(~allowed, neg)
    e = end_logits.masked_fill(~allowed, neg)
    loss = (F.cross_entropy(s, starts) + F.cross_entropy(e, ends)) / 2
    if shared_weight <= 0:
        return loss
    shared = []
    rows: dict[str, list[int]] = {}
    for i, q in enumerate(qids):
        rows.setdefault(q, []).append(i)
    for q, idx in rows.items():
        idx_t = torch.tensor(idx)
        if int((starts[idx_t] > 0).sum()) == 0:
            continue  # unanswerable: the per-window term already teaches "no answer"
        for logits, gold in ((start_logits, starts), (end_logits, ends)):
            lg = logits[idx_t].masked_fill(~ctx[idx_t], neg)
            flat = lg.reshape(-1)
            gold_mask = torch.zeros_like(lg, dtype=torch.bool)
            for r, i in enumerate(idx):
                if int(gold[i]) > 0:
                    gold_mask[r, int(gold[i])] = True
            shared.append(torch.logsumexp(flat, 0) - torch.logsumexp(flat.masked_fill(~gold_mask.reshape(-1), neg), 0))
    if shared:
        loss = loss + shared_weight * torch.stack(shared).mean() / 2
    return loss


PROBE_QUESTION = "Where is the UNRCCA headquartered?"
PROBE_PASSAGE = (
    "UNRCCA, founded in 2007 through the collaborative efforts of Central Asian governments and the United Nations, "
    "is a special political mission of the UN Department of Political Affairs, headquartered in Ashgabat, Turkmenistan."
)


def record_probe(folder: Path) -> dict:
    """Read a fixed question with the saved weights and record what came out, for the loading test to compare."""
    from regional_chat.reading.reader import Reader

    reading = Reader(folder, dtype="float32").read(PROBE_QUESTION, [PROBE_PASSAGE])  # float32: the same on every CPU
    best = reading.best
    probe = {"question": PROBE_QUESTION, "passage": PROBE_PASSAGE, "start": best.start, "end": best.end,
             "text": PROBE_PASSAGE[best.start : best.end], "score": round(best.score, 3), "null": round(best.null, 3)}
    meta_path = folder / "reader.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["probe"] = probe
    meta_path.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return probe


def keep_freed_memory() -> None:
    """Ask glibc to keep freed memory instead of handing it back to the kernel after every step.

    Each training step allocates and frees hundreds of MB of activations; by default glibc
    returns large blocks with munmap and takes them back with page faults on the next step.
    Measured here (2 cores, bf16 autocast, 32 windows of 256 tokens): 5.0 s a step before,
    3.2 s after. A no-op where the C library is not glibc.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    for option, value in ((M_MMAP_THRESHOLD, 1 << 30), (M_TRIM_THRESHOLD, 1 << 31), (M_TOP_PAD, 1 << 28)):
        libc.mallopt(option, value)


def autocast_precision(choice: str, device: str) -> str:
    """The precision the training steps run in: ``choice`` unless it is "auto".

    "auto" is bf16 autocast on CUDA and on a CPU that computes bfloat16 natively (AVX512-BF16 or AMX), else
    fp32: without those instructions bf16 is emulated, and a step of 32 windows took 2.6 times fp32's time
    (medians 11.9 against 4.5 s on a 2-core Intel Xeon without them, `bench/bench_train_step.py`, 2026-12-07).
    """
    if choice != "auto":
        return choice
    if device == "cuda":
        return "bf16"
    from regional_chat.embedding import cpu_has_bf16

    return "bf16" if cpu_has_bf16() else "fp32"


def git_commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--backbone", choices=reader_model.BACKBONES, default="minilm")
    p.add_argument("--init", type=Path, default=None, help="start from this trained reader's weights (a second stage) instead of a new head")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: run the epochs)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=float, default=0.06)
    p.add_argument("--windows-per-batch", type=int, default=32)
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--stride", type=int, default=96)
    p.add_argument("--serve-max-len", type=int, default=256,
                   help="window length when serving (default: the training length; 384 read SQuAD's held-out calibration articles "
                        "worse: gold paragraph EM/F1 50.07/63.30 against 50.76/64.08 at 256, 2026-12-07)")
    p.add_argument("--span-length-penalty", type=float, default=0.1,
                   help="serving: a span is chosen by its logits less this per token (0.1 chosen on the domain dev split: 2 more right, 2 fewer "
                        "wrong; SQuAD calibration articles: EM the same, F1 -1.3)")
    p.add_argument("--distractors", type=int, default=1)
    p.add_argument("--shared-weight", type=float, default=1.0)
    p.add_argument("--limit", type=int, default=0, help="use only the first N questions (after shuffling): smoke runs and pilots")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="bf16: bfloat16 autocast; fp32: none; auto: bf16 on CUDA and on CPUs that compute it natively "
                        "(AVX512-BF16 or AMX), else fp32 (emulated bf16 took 2.6 times fp32's time a step on an Intel Xeon "
                        "without them: bench/results/train-step.json)")
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--checkpoint-every", type=int, default=50,
                   help="keep <out>/checkpoint.pt every this many steps (0: only on Ctrl-C, SIGTERM or --stop-after)")
    p.add_argument("--stop-after", type=int, default=0,
                   help="stop with a checkpoint after this many steps of this sitting (0: run to the end); go on with --resume")
    p.add_argument("--resume", action="store_true", help="go on from <out>/checkpoint.pt, made by a run with the same arguments")
    return p


# arguments that may differ between the sittings of one run: they change nothing that is learned
SITTING_ARGS = {"out", "log_every", "checkpoint_every", "stop_after", "resume", "threads"}
CHECKPOINT = "checkpoint.pt"


def recorded_command(argv: list[str]) -> str:
    """How ``reader.json`` records the command that made it (``rebuild.py`` compares it with the one it plans).

    ``--resume`` is left out: a run finished over several sittings was made by the command of its first.
    """
    return "python training/train_reader.py " + " ".join(a for a in argv if a != "--resume")


def run_signature(args: argparse.Namespace) -> dict:
    """What a checkpoint must have been made with for ``--resume`` to go on from it."""
    return {k: str(v) for k, v in sorted(vars(args).items()) if k not in SITTING_ARGS}


def save_checkpoint(path: Path, state: dict) -> None:
    """Write the checkpoint whole or not at all: a kill while writing leaves the previous one."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path, args: argparse.Namespace) -> dict:
    import torch

    if not path.is_file():
        raise SystemExit(f"--resume: no checkpoint at {path} (a run keeps one there every --checkpoint-every steps).")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file
        raise SystemExit(f"--resume: {path} is not a readable checkpoint ({exc.__class__.__name__}: {exc}).") from exc
    mine = run_signature(args)
    theirs = state.get("signature", {})
    differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    if differ:
        detail = ", ".join(f"--{k.replace('_', '-')} {theirs.get(k)!r} there, {mine.get(k)!r} now" for k in differ)
        raise SystemExit(f"--resume: {path} was made with other arguments ({detail}); resume with the same ones.")
    return state


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    import torch
    from safetensors.torch import save_file

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    precision = autocast_precision(args.precision, device)
    t0 = time.time()
    examples, files, pools = training_examples(args.data)
    rng = random.Random(args.seed)
    rng.shuffle(examples)
    if args.limit:
        examples = examples[: args.limit]
    negatives = add_distractors(examples, pools, args.distractors, args.seed)
    if args.init is not None:
        model, tokenizer, init_meta = reader_model.load_trained(args.init, "float32")
        if init_meta["backbone"] != args.backbone:
            raise SystemExit(f"--init {args.init} is a {init_meta['backbone']} reader, not {args.backbone}.")
        reader_model.freeze(model, args.backbone)  # load_trained gives every weight trainable
    else:
        model, tokenizer = reader_model.new_model(args.backbone)
        init_meta = None
    feats = featurise(tokenizer, examples + negatives, args.max_len, args.stride)
    n_q = len({e.qid for e in examples})
    print(
        f"{n_q} questions ({sum(e.answer_start is None for e in examples)} unanswerable), {len(negatives)} distractor "
        f"paragraphs, {len(feats)} windows; prepared in {time.time() - t0:.0f} s",
        flush=True,
    )
    model.to(device)
    model.train()
    params = [p_ for p_ in model.parameters() if p_.requires_grad]
    shipped = reader_model.shipped_names(model, args.backbone)
    lost = sorted(n for n, p_ in model.named_parameters() if p_.requires_grad and n not in shipped)
    if lost:  # a weight that trains but is not written would be trained for nothing, and served untrained
        raise SystemExit(f"these weights would train but are not shipped: {', '.join(lost)}")
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    per_epoch = len(batches(feats, args.windows_per_batch, random.Random(0)))
    total = args.steps or max(1, int(math.ceil(per_epoch * args.epochs)))
    warm = max(1, int(total * args.warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
    pad = tokenizer.pad_token_id or 0
    step, losses, curve = 0, [], []
    epoch, done_in_epoch, seconds_before = 0, 0, 0.0
    checkpoint = args.out / CHECKPOINT
    if args.resume:
        state = load_checkpoint(checkpoint, args)
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["schedule"])
        except (RuntimeError, ValueError, KeyError) as exc:  # made by other code: other weights or other trainable ones
            raise SystemExit(f"--resume: {checkpoint} does not fit this model and optimiser ({exc}); delete it to start again.") from exc
        torch.set_rng_state(state["torch_rng"])
        if device == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"])
        step, epoch, done_in_epoch = state["step"], state["epoch"], state["done_in_epoch"]
        losses, curve, seconds_before = state["losses"], state["curve"], state["seconds"]
        print(f"resumed from {checkpoint} at step {step}/{total}", flush=True)
    elif checkpoint.exists():
        raise SystemExit(f"{checkpoint} exists: go on from it with --resume, or delete it to start again.")

    stop = {"signal": None}

    def on_signal(signum, _frame):  # finish the step in hand, keep a checkpoint, then stop
        stop["signal"] = signum

    handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    t_train = time.time()

    def keep() -> None:
        save_checkpoint(checkpoint, {
            "signature": run_signature(args), "model": model.state_dict(), "optimizer": opt.state_dict(),
            "schedule": sched.state_dict(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state() if device == "cuda" else None,
            "step": step, "epoch": epoch, "done_in_epoch": done_in_epoch, "losses": losses, "curve": curve,
            "seconds": seconds_before + time.time() - t_train,
        })

    sitting = 0
    try:
        while step < total:
            for batch in batches(feats, args.windows_per_batch, random.Random(args.seed + epoch))[done_in_epoch:]:
                if step >= total:
                    break
                ids, types, att, ctx, starts, ends = (t.to(device) for t in collate(batch, pad))
                with torch.autocast(device_type="cuda" if device == "cuda" else "cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                    out = model(input_ids=ids, token_type_ids=types, attention_mask=att)
                loss = loss_of(out.start_logits.float(), out.end_logits.float(), ctx, starts, ends, [f.qid for f in batch], args.shared_weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                step += 1
                sitting += 1
                done_in_epoch += 1
                losses.append(float(loss.detach()))
                if step % args.log_every == 0 or step == total:
                    mean = float(np.mean(losses[-args.log_every :]))
                    curve.append([step, round(mean, 4)])
                    print(f"step {step}/{total}  loss {mean:.3f}  {seconds_before + time.time() - t_train:.0f} s", flush=True)
                if step < total and (stop["signal"] is not None or sitting == args.stop_after):
                    keep()
                    why = f"signal {stop['signal']}" if stop["signal"] is not None else f"--stop-after {args.stop_after}"
                    print(f"stopped ({why}) at step {step}/{total}; go on with the same arguments and --resume", flush=True)
                    return 3
                if args.checkpoint_every and step % args.checkpoint_every == 0 and step < total:
                    keep()
            epoch += 1
            done_in_epoch = 0
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    seconds = seconds_before + time.time() - t_train
    args.out.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(str(args.out))
    save_file(reader_model.shipped_tensors(model, args.backbone), str(args.out / "model.safetensors"))
    if args.backbone == "minilm":
        tokenizer.save_pretrained(str(args.out))  # e5's tokenizer comes with its recovered encoder
    meta = {
        "format": reader_model.FORMAT,
        "backbone": args.backbone,
        "max_len": args.max_len,
        "stride": args.stride,
        "max_question_tokens": 64,
        "max_answer_tokens": 30,
        "span_length_penalty": args.span_length_penalty,
        "serve_max_len": args.serve_max_len,
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
        "backbone_model": reader_model.backbone_id(args.backbone),
        "trained": {
            "command": recorded_command(argv if argv is not None else sys.argv[1:]),
            "commit": git_commit(),
            "seed": args.seed,
            "device": device,
            "threads": args.threads,
            "precision": precision,
            "seconds": round(seconds, 1),
            "steps": step,
            "epochs": args.epochs,
            "lr": args.lr,
            "windows_per_batch": args.windows_per_batch,
            "distractors": args.distractors,
            "shared_weight": args.shared_weight,
            "questions": n_q,
            "unanswerable": sum(e.answer_start is None for e in examples),
            "distractor_paragraphs": len(negatives),
            "windows": len(feats),
            "loss_curve": curve,
            "data": {f: sha256(args.data / f) for f in files},
        },
    }
    if init_meta is not None:
        # the stages before this one, oldest first: together they say how the weights were made
        meta["trained"]["init"] = str(args.init)
        meta["stages"] = init_meta.get("stages", []) + [init_meta["trained"]]
    (args.out / "reader.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    probe = record_probe(args.out)
    (args.out / CHECKPOINT).unlink(missing_ok=True)  # the run is whole: nothing left to resume
    print(f"probe: {probe['question']!r} -> {probe['text']!r}")
    print(f"wrote {args.out} after {step} steps in {seconds:.0f} s; loss {curve[0][1] if curve else '-'} -> {curve[-1][1] if curve else '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
