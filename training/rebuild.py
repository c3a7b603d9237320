"""Rebuild the shipped reader in one command: both training stages, then its three calibrations.

    python training/rebuild.py                  # writes src/regional_chat/reading/weights (hours on 2 CPU cores)
    python training/rebuild.py --dry-run        # only print the commands
    python training/rebuild.py --out /tmp/r     # somewhere else (then bench/bench_reader.py --reader /tmp/r)
    python training/rebuild.py --backbone e5 --work /tmp/rc-e5 --out /tmp/r-e5   # the same recipe on e5's encoder

A rebuild stopped part-way (Ctrl-C, a closed session) goes on where it stood when run again with the same
``--work``: a training stage that kept a checkpoint there resumes from it (``train_reader.py --resume``), and
a stage whose reader in ``--work`` was made by the very command planned now is kept, not trained again.

The steps are the commands training/README.md lists, run one after the other with this Python; the first that
fails stops the rebuild. Everything is made in ``--work`` and the files it made are copied into ``--out`` only
when every step has passed, so a failed or stopped rebuild leaves the shipped reader as it was (the model
card, written by hand, is kept). The calibrations' reports go to ``--work``/results, and to bench/results only when
``--out`` is the shipped folder: a reader rebuilt elsewhere leaves the repository's figures alone. Each script records what it did itself: ``reader.json`` holds both stages'
commands, seeds, data hashes and times; the calibration files say what they were fitted on.
``tests/test_training.py`` checks that the training steps here are the ones the shipped ``reader.json`` records.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "regional_chat" / "reading" / "weights"
TRAINING = ROOT / "training"
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(TRAINING))

from train_reader import CHECKPOINT, recorded_command  # noqa: E402

# what a rebuild makes; anything else in --out (the model card) is left alone
MADE = ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "reader.json",
        "calibration.json", "calibration-e5.json", "calibration-crosslingual.json")


def steps(work: Path, data: Path, device: str = "auto", precision: str = "auto", backbone: str = "minilm") -> list[tuple[str, list[str]]]:
    """(name, script arguments) of each step, in order; every step reads or writes under ``work``."""
    stage1, reader, reports = work / "stage1", work / "reader", work / "results"
    train = ["--data", str(data), "--device", device, "--precision", precision, "--log-every", "25"]
    return [
        (f"stage 1: a new span head on the packaged {backbone}, one BM25 distractor a question",
         ["train_reader.py", "--backbone", backbone, "--epochs", "1", "--seed", "13", "--out", str(stage1), *train]),
        ("stage 2: one epoch more at half the learning rate, two distractors, another data order",
         ["train_reader.py", "--backbone", backbone, "--init", str(stage1), "--epochs", "1", "--lr", "5e-5", "--distractors", "2",
          "--seed", "14", "--out", str(reader), *train]),
        ("confidence and threshold, MiniLM retrieval",
         ["calibrate_reader.py", "--reader", str(reader), "--data", str(data), "--work", str(work / "calibrate-minilm"),
          "--rows", str(work / "calibration-rows.json"), "--results", str(reports / "calibration.json")]),
        ("confidence and threshold, e5 retrieval",
         ["calibrate_reader.py", "--reader", str(reader), "--data", str(data), "--model", "e5", "--work", str(work / "calibrate-e5"),
          "--rows", str(work / "calibration-rows-e5.json"), "--results", str(reports / "calibration-e5.json")]),
        ("confidence of the cross-lingual path (Russian and Kazakh questions)",
         ["calibrate_crosslingual.py", "--reader", str(reader), "--data", str(data), "--work", str(work / "crosslingual"),
          "--rows", str(work / "crosslingual-rows.json"), "--results", str(reports / "crosslingual.json")]),
    ]


def made_by(cmd: list[str], out: Path) -> bool:
    """True when ``out``, a training step's ``--out``, already holds the whole reader that exactly this command makes."""
    try:
        recorded = json.loads((out / "reader.json").read_text(encoding="utf-8"))["trained"]["command"]
    except (OSError, ValueError, KeyError):
        return False
    # read back through recorded_command: a record written before it left out --resume counts as the same command
    recorded = recorded_command(recorded.removeprefix(recorded_command([])).split(" "))
    return not (out / CHECKPOINT).exists() and recorded == recorded_command(cmd[1:])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=WEIGHTS)
    p.add_argument("--work", type=Path, default=Path("/tmp/rc-rebuild"))
    p.add_argument("--device", default="auto", help="passed to train_reader.py: auto (CUDA when present), cpu or cuda")
    p.add_argument("--precision", default="auto", help="passed to train_reader.py: auto, bf16 or fp32")
    p.add_argument("--backbone", default="minilm", choices=("minilm", "e5"), help="the encoder the reader is trained from")
    p.add_argument("--dry-run", action="store_true", help="print the commands and stop")
    args = p.parse_args(argv)
    plan = steps(args.work, args.data, args.device, args.precision, args.backbone)
    for name, cmd in plan:
        print(f"# {name}\n{shlex.join([Path(sys.executable).name, 'training/' + cmd[0], *cmd[1:]])}")
    if args.dry_run:
        return 0
    if not args.data.is_dir():
        raise SystemExit(f"--data {args.data} is not a folder: the rebuild reads SQuAD, XQuAD and the speeches from ../shared/data.")
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    retrained = False  # a stage trained now: every later stage starts from it, so none of theirs is kept or resumed
    for k, (name, cmd) in enumerate(plan, 1):
        t = time.time()
        print(f"\n== step {k}/{len(plan)}: {name}", flush=True)
        extra: list[str] = []
        if cmd[0] == "train_reader.py":
            out = Path(cmd[cmd.index("--out") + 1])
            if not retrained and made_by(cmd, out):
                print(f"== step {k}: kept, {out} was made by this command", flush=True)
                continue
            if (out / CHECKPOINT).exists():
                if retrained:
                    (out / CHECKPOINT).unlink()  # it went on from the stage before, which is being made again
                    print(f"== step {k}: its checkpoint started from the stage made again above: deleted", flush=True)
                else:
                    extra = ["--resume"]  # a stopped sitting of this stage: go on from its checkpoint
            retrained = True
        done = subprocess.run([sys.executable, str(TRAINING / cmd[0]), *cmd[1:], *extra], cwd=ROOT)
        if done.returncode != 0:
            print(f"step {k} failed (exit {done.returncode}); {args.out} is unchanged.", file=sys.stderr)
            return done.returncode
        print(f"== step {k} took {time.time() - t:.0f} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    made = args.work / "reader"
    for name in MADE:
        if (made / name).is_file():
            shutil.copyfile(made / name, args.out / name)
    # the calibrations' reports describe the shipped reader: bench/results gets them only when that is what was rebuilt
    if args.out.resolve() == WEIGHTS.resolve():
        for report in sorted((args.work / "results").glob("*.json")):
            shutil.copyfile(report, RESULTS / report.name)
    print(f"\nrebuilt {args.out} in {time.time() - t0:.0f} s; measure it with bench/bench_reader.py --reader {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
