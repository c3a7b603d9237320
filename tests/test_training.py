"""training/train_reader.py: a few steps on a tiny hand-written slice make the loss fall and leave a loadable reader."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _train_module():
    spec = importlib.util.spec_from_file_location("train_reader", ROOT / "training" / "train_reader.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_reader"] = module  # its dataclasses look their module up while they are made
    spec.loader.exec_module(module)
    return module


FACTS = [
    ("The Aral Sea lies between Kazakhstan and Uzbekistan and shrank after 1960.", [("Which countries border the Aral Sea?", "Kazakhstan and Uzbekistan"), ("When did the Aral Sea start to shrink?", "1960")]),
    ("Astana became the capital of Kazakhstan in 1997, replacing Almaty.", [("Which city did Astana replace as capital?", "Almaty"), ("When did Astana become the capital?", "1997")]),
    ("The Rogun dam on the Vakhsh river is built by Tajikistan.", [("Which river is the Rogun dam on?", "Vakhsh"), ("Who builds the Rogun dam?", "Tajikistan")]),
    ("Bishkek hosted the summit of the Shanghai Cooperation Organisation in 2019.", [("Which city hosted the 2019 summit?", "Bishkek"), ("Which organisation held the summit?", "the Shanghai Cooperation Organisation")]),
]


def _squad(path: Path, with_impossible: bool) -> None:
    articles = []
    for a, (context, qas) in enumerate(FACTS):
        rows = [{"id": f"q{a}{i}", "question": q, "answers": [{"text": t, "answer_start": context.index(t)}]} for i, (q, t) in enumerate(qas)]
        if with_impossible:
            rows.append({"id": f"u{a}", "question": "Who was the first astronaut?", "answers": [], "is_impossible": True})
        articles.append({"title": f"T{a}", "paragraphs": [{"context": context, "qas": rows}]})
    path.write_text(json.dumps({"data": articles}), encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_a_few_training_steps_lower_the_loss_and_write_a_reader_with_its_contract(tmp_path, precision):
    data = tmp_path / "data"
    data.mkdir()
    _squad(data / "squad-dev-v1.1.json", with_impossible=False)
    _squad(data / "squad-dev-v2.0-tune-half.json", with_impossible=True)
    out = tmp_path / "reader"
    train = _train_module()
    # the same few windows over and over: a working loop must fit them
    # each precision forced, whatever this CPU would choose: both must train (bf16 is emulated where the CPU lacks it)
    assert train.main(["--data", str(data), "--out", str(out), "--steps", "12", "--lr", "5e-4", "--warmup", "0.1",
                       "--windows-per-batch", "64", "--log-every", "3", "--threads", "2", "--device", "cpu", "--precision", precision]) == 0
    meta = json.loads((out / "reader.json").read_text())
    curve = [loss for _, loss in meta["trained"]["loss_curve"]]
    assert len(curve) == 4 and curve[-1] < 0.7 * curve[0], curve
    assert set(meta["trained"]["data"]) == {"squad-dev-v1.1.json", "squad-dev-v2.0-tune-half.json"}
    assert meta["trained"]["data"]["squad-dev-v1.1.json"] == train.sha256(data / "squad-dev-v1.1.json")
    assert "train_reader.py" in meta["trained"]["command"] and meta["trained"]["seed"] == 13
    assert meta["trained"]["precision"] == precision
    # only even-indexed articles train (T0, T2), with their unanswerable questions, and a distractor each
    assert meta["trained"]["questions"] == 6 and meta["trained"]["unanswerable"] == 2
    from regional_chat.reading.reader import Reader

    probe = meta["probe"]
    best = Reader(out).read(probe["question"], [probe["passage"]]).best
    assert (best.start, best.end) == (probe["start"], probe["end"])
    # a second stage starts from those weights and records the first one under "stages"
    second = tmp_path / "second"
    assert train.main(["--data", str(data), "--out", str(second), "--init", str(out), "--steps", "3", "--lr", "1e-4",
                       "--windows-per-batch", "64", "--log-every", "3", "--threads", "2", "--device", "cpu"]) == 0
    meta2 = json.loads((second / "reader.json").read_text())
    assert meta2["stages"] == [meta["trained"]] and meta2["trained"]["init"] == str(out)
    # serving reads windows of the training length unless told otherwise
    assert meta2["serve_max_len"] == meta2["max_len"] == 256 and meta2["trained"]["steps"] == 3
    # it started where the first stage ended: its first loss is near the first stage's last, not its first
    first_loss = meta2["trained"]["loss_curve"][0][1]
    assert first_loss < 0.7 * curve[0], (first_loss, curve)


def test_auto_precision_is_bf16_only_where_it_is_computed_natively(monkeypatch):
    import regional_chat.embedding as embedding

    train = _train_module()
    monkeypatch.setattr(embedding, "cpu_has_bf16", lambda: False)
    assert train.autocast_precision("auto", "cpu") == "fp32"
    assert train.autocast_precision("auto", "cuda") == "bf16"
    assert train.autocast_precision("bf16", "cpu") == "bf16"  # forced: emulated, slower, still trains
    monkeypatch.setattr(embedding, "cpu_has_bf16", lambda: True)
    assert train.autocast_precision("auto", "cpu") == "bf16"
    assert train.autocast_precision("fp32", "cpu") == "fp32"


def test_the_answer_threshold_never_goes_under_its_floor():
    import numpy as np

    spec = importlib.util.spec_from_file_location("calibrate_reader", ROOT / "training" / "calibrate_reader.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    p = np.array([0.2, 0.3, 0.35, 0.6, 0.7, 0.9])
    y = np.array([1, 0, 1, 1, 1, 1])
    # unconstrained, the dev split's utility (right - 2 x wrong) is best answering from 0.35 up
    assert module.choose_threshold(p, y, wrong_cost=2.0) == pytest.approx(0.35)
    # a floor (set by the left-out questions) wins over that utility
    assert module.choose_threshold(p, y, wrong_cost=2.0, floor=0.5) == pytest.approx(0.5)
    assert module.choose_threshold(p, y, wrong_cost=2.0, floor=0.95) == pytest.approx(0.95)


def test_calibration_rows_read_from_another_dev_set_are_read_again(tmp_path, monkeypatch):
    # the threshold is chosen on the domain dev split: rows cached from an older version of the set must not be reused
    spec = importlib.util.spec_from_file_location("calibrate_reader", ROOT / "training" / "calibrate_reader.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import bench_domain
    from regional_chat.settings import Settings

    reader = tmp_path / "reader"
    reader.mkdir()
    (reader / "model.safetensors").write_bytes(b"weights")
    devset = tmp_path / "domain-dev.jsonl"
    devset.write_text('{"id": "d001"}\n', encoding="utf-8")
    monkeypatch.setattr(bench_domain, "DEVSET", devset)
    before = module.rows_key(reader, Settings(model="e5"), 0)
    assert before == module.rows_key(reader, Settings(model="e5"), 0)
    devset.write_text('{"id": "d001"}\n{"id": "d002"}\n', encoding="utf-8")
    assert module.rows_key(reader, Settings(model="e5"), 0) != before


def _rebuild_module():
    spec = importlib.util.spec_from_file_location("rebuild", ROOT / "training" / "rebuild.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# what shapes the weights; where they are written, the log and the device do not
RECIPE = ("backbone", "epochs", "steps", "lr", "warmup", "windows_per_batch", "max_len", "stride", "distractors", "shared_weight", "limit", "seed")


def test_the_one_command_rebuild_trains_the_stages_the_shipped_reader_records(tmp_path):
    import shlex

    train, rebuild = _train_module(), _rebuild_module()
    meta = json.loads((ROOT / "src" / "regional_chat" / "reading" / "weights" / "reader.json").read_text())
    recorded = [s["command"] for s in meta.get("stages", [])] + [meta["trained"]["command"]]
    plan = [cmd[1:] for _, cmd in rebuild.steps(tmp_path, tmp_path / "data") if cmd[0] == "train_reader.py"]
    assert len(plan) == len(recorded) == 2
    parser = train.build_parser()
    for planned, command in zip(plan, recorded):
        ours = vars(parser.parse_args(planned))
        shipped = vars(parser.parse_args(shlex.split(command)[2:]))  # "python training/train_reader.py ..."
        assert {k: ours[k] for k in RECIPE} == {k: shipped[k] for k in RECIPE}, command
    # stage 2 starts from stage 1's output, and only what every step passed reaches --out
    assert plan[1][plan[1].index("--init") + 1] == plan[0][plan[0].index("--out") + 1]
    assert all("--reader" in cmd and str(tmp_path / "reader") in cmd for _, cmd in rebuild.steps(tmp_path, tmp_path) if cmd[0] != "train_reader.py")


def test_a_failed_rebuild_step_leaves_the_weights_alone(tmp_path, monkeypatch):
    import subprocess

    rebuild = _rebuild_module()
    out = tmp_path / "weights"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"shipped")
    (out / "MODEL_CARD.md").write_text("by hand")
    (tmp_path / "data").mkdir()
    ran, fail_at = [], [2]

    def fake_run(cmd, cwd=None):
        ran.append(Path(cmd[1]).name)
        if len(ran) == fail_at[0]:
            return subprocess.CompletedProcess(cmd, 3)
        # a step that passes writes into the work folder, as the real ones do
        (tmp_path / "work" / "reader").mkdir(parents=True, exist_ok=True)
        (tmp_path / "work" / "reader" / "model.safetensors").write_bytes(b"new")
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(rebuild.subprocess, "run", fake_run)
    args = ["--data", str(tmp_path / "data"), "--out", str(out), "--work", str(tmp_path / "work")]
    assert rebuild.main(args) == 3
    assert ran == ["train_reader.py", "train_reader.py"] and (out / "model.safetensors").read_bytes() == b"shipped"
    # every step passing: the new files replace the old, the model card stays
    ran.clear()
    fail_at[0] = 0
    assert rebuild.main(args) == 0
    assert ran == ["train_reader.py", "train_reader.py", "calibrate_reader.py", "calibrate_reader.py", "calibrate_crosslingual.py"]
    assert (out / "model.safetensors").read_bytes() == b"new" and (out / "MODEL_CARD.md").read_text() == "by hand"


@pytest.mark.slow
def test_a_run_stopped_and_resumed_ends_with_the_weights_of_one_unbroken_run(tmp_path):
    import torch
    from safetensors.torch import load_file

    data = tmp_path / "data"
    data.mkdir()
    _squad(data / "squad-dev-v1.1.json", with_impossible=False)
    _squad(data / "squad-dev-v2.0-tune-half.json", with_impossible=True)
    train = _train_module()
    # small batches: one epoch is a few steps, so the run crosses an epoch and stops in the middle of one
    common = ["--data", str(data), "--steps", "7", "--lr", "5e-4", "--warmup", "0.1", "--windows-per-batch", "4",
              "--log-every", "1", "--threads", "1", "--device", "cpu", "--precision", "fp32"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert train.main(common + ["--out", str(whole)]) == 0
    assert train.main(common + ["--out", str(parts), "--stop-after", "3"]) == 3
    assert (parts / "checkpoint.pt").is_file() and not (parts / "model.safetensors").exists()
    # the next sitting must be the same run: other arguments are refused, and so is starting over on top of it
    with pytest.raises(SystemExit, match="--lr"):
        train.main([("1e-4" if a == "5e-4" else a) for a in common] + ["--out", str(parts), "--resume"])
    with pytest.raises(SystemExit, match="--resume"):
        train.main(common + ["--out", str(parts)])
    assert train.main(common + ["--out", str(parts), "--resume", "--stop-after", "2", "--checkpoint-every", "1"]) == 3
    assert train.main(common + ["--out", str(parts), "--resume"]) == 0
    assert not (parts / "checkpoint.pt").exists()
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(parts / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    meta_a, meta_b = (json.loads((d / "reader.json").read_text())["trained"] for d in (whole, parts))
    assert meta_a["loss_curve"] == meta_b["loss_curve"] and meta_b["steps"] == 7
    # the record is the run's command, the same whether it was made in one sitting or three
    assert meta_b["command"] == meta_a["command"].replace(str(whole), str(parts))
    with pytest.raises(SystemExit, match="no checkpoint"):
        train.main(common + ["--out", str(tmp_path / "nothing"), "--resume"])
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "checkpoint.pt").write_bytes(b"PK\x03\x04 cut short")  # a file cut off while copied
    with pytest.raises(SystemExit, match="not a readable checkpoint"):
        train.main(common + ["--out", str(tmp_path / "torn"), "--resume"])


def test_a_rebuild_run_again_keeps_finished_stages_and_resumes_a_stopped_one(tmp_path, monkeypatch):
    import subprocess

    rebuild = _rebuild_module()
    work, data = tmp_path / "work", tmp_path / "data"
    data.mkdir()
    plan = rebuild.steps(work, data, "auto", "auto", "e5")
    stage1_cmd, stage2_cmd = (cmd for _, cmd in plan if cmd[0] == "train_reader.py")
    assert stage1_cmd[stage1_cmd.index("--backbone") + 1] == stage2_cmd[stage2_cmd.index("--backbone") + 1] == "e5"
    # stage 1 finished in an earlier sitting by exactly this command; stage 2 was stopped with a checkpoint
    (work / "stage1").mkdir(parents=True)
    (work / "stage1" / "reader.json").write_text(json.dumps(
        {"trained": {"command": "python training/train_reader.py " + " ".join(stage1_cmd[1:])}}))
    (work / "reader").mkdir()
    (work / "reader" / "checkpoint.pt").write_bytes(b"ckpt")
    ran = []

    def fake_run(cmd, cwd=None):
        ran.append(cmd[1:])
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(rebuild.subprocess, "run", fake_run)
    args = ["--data", str(data), "--out", str(tmp_path / "out"), "--work", str(work), "--backbone", "e5"]
    assert rebuild.main(args) == 0
    assert [Path(c[0]).name for c in ran] == ["train_reader.py", "calibrate_reader.py", "calibrate_reader.py", "calibrate_crosslingual.py"]
    assert ran[0][1:] == stage2_cmd[1:] + ["--resume"]
    # stage 2, now finished over two sittings, recorded its last sitting's --resume: it is kept, not trained again
    ran.clear()
    (work / "reader" / "checkpoint.pt").unlink()
    (work / "reader" / "reader.json").write_text(json.dumps(
        {"trained": {"command": "python training/train_reader.py " + " ".join(stage2_cmd[1:] + ["--resume"])}}))
    assert rebuild.main(args) == 0
    assert [Path(c[0]).name for c in ran] == ["calibrate_reader.py", "calibrate_reader.py", "calibrate_crosslingual.py"]
    # a stage made by another command (here: another seed) is trained again, from the start
    ran.clear()
    (work / "stage1" / "reader.json").write_text(json.dumps(
        {"trained": {"command": "python training/train_reader.py " + " ".join(stage1_cmd[1:]).replace("--seed 13", "--seed 12")}}))
    (work / "reader" / "checkpoint.pt").write_bytes(b"ckpt")  # stage 2's, from the old stage 1: neither kept nor resumed
    assert rebuild.main(args) == 0
    assert ran[0][1:] == stage1_cmd[1:] and ran[1][1:] == stage2_cmd[1:]
    assert not (work / "reader" / "checkpoint.pt").exists()


def test_a_rebuild_elsewhere_leaves_the_repository_reports_alone(tmp_path, monkeypatch):
    import subprocess

    rebuild = _rebuild_module()
    work, data, results = tmp_path / "work", tmp_path / "data", tmp_path / "bench-results"
    data.mkdir()
    results.mkdir()
    monkeypatch.setattr(rebuild, "RESULTS", results)
    # every calibration writes its report under --work, never straight into bench/results
    for _, cmd in rebuild.steps(work, data):
        if cmd[0] != "train_reader.py":
            assert Path(cmd[cmd.index("--results") + 1]).parent == work / "results"

    def fake_run(cmd, cwd=None):
        if "--results" in cmd:
            report = Path(cmd[cmd.index("--results") + 1])
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text("{}")
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(rebuild.subprocess, "run", fake_run)
    args = ["--data", str(data), "--work", str(work)]
    assert rebuild.main(args + ["--out", str(tmp_path / "elsewhere")]) == 0
    assert list(results.iterdir()) == []
    shipped = tmp_path / "shipped"
    monkeypatch.setattr(rebuild, "WEIGHTS", shipped)
    assert rebuild.main(args + ["--out", str(shipped)]) == 0
    assert sorted(p.name for p in results.iterdir()) == ["calibration-e5.json", "calibration.json", "crosslingual.json"]


def test_the_domain_bench_tells_whether_the_passages_read_held_the_answer():
    # bench_domain's "passages_read_hold_answer": what it misses beyond that share, retrieval missed; under it, the reader
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_domain

    from regional_chat.types import Chunk, Hit

    def hit(doc_id: str, text: str) -> Hit:
        return Hit(Chunk(1, doc_id, 0, 0, len(text), text), score=1.0)

    factoid = {"answers": [{"text": "Kaha Imnadze"}], "kind": "factoid", "doc": None, "answerable": True, "id": "x", "language": "en"}
    assert bench_domain.passages_hold_answer(factoid, [hit("a.txt", "UNRCCA sits in Ashgabat."), hit("b.txt", "he met Kaha\nImnadze, its head")])
    assert not bench_domain.passages_hold_answer(factoid, [hit("a.txt", "he met Imnadze, its head")])
    assert not bench_domain.passages_hold_answer(factoid, [])
    # a question naming its country and year holds its answer only in that speech
    named = dict(factoid, answers=[{"text": "a cyberpolice unit"}], kind="country-year", doc="KAZ_67_2012")
    speech = bench_domain.doc_id_of("KAZ_67_2012")
    assert bench_domain.passages_hold_answer(named, [hit(speech, "establish a cyberpolice unit")])
    assert not bench_domain.passages_hold_answer(named, [hit(bench_domain.doc_id_of("KGZ_67_2012"), "establish a cyberpolice unit")])
    # judged with the passages read, the row says so; without them (not recorded) the share leaves it out
    from regional_chat.types import Answer

    refused = Answer(question="q", found=False, confidence=0.2)
    with_read = bench_domain.judge(named, refused, [hit(speech, "establish a cyberpolice unit")])
    without = bench_domain.judge(named, refused)
    assert with_read["read_holds_answer"] is True and "read_holds_answer" not in without
    assert bench_domain.summarise([with_read])["passages_read_hold_answer"] == 100.0
    assert bench_domain.summarise([without])["passages_read_hold_answer"] is None
