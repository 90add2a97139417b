"""mgpt-train and mgpt-eval through click's CliRunner: a short real run, and every bad input."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mgpt.runtime.vocab import Vocab
from mgpt.train import checkpoint, model
from mgpt.train.config import GPTConfig
from mgpt.train.cli import eval_command, train_command
from mgpt.train.data import read_documents, split
from mgpt.train.trainer import evaluate

NAMES = "\n".join(["emma", "olivia", "ava", "isabella", "sophia", "mia", "liam", "noah", "jo", "kaya"] * 3) + "\n"


def run(command, args):
    return CliRunner().invoke(command, [str(a) for a in args])


def assert_one_line_error(result, *words):
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for word in words:
        assert word in errors[0], errors[0]


@pytest.fixture
def names(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text(NAMES)
    return path


def test_a_short_run_writes_a_checkpoint_and_a_metrics_line_per_step(tmp_path, names):
    out = tmp_path / "m.npz"
    result = run(train_command, ["--data", names, "--out", out, "--steps", 20, "--batch-size", 4,
                                 "--val-fraction", 0.2, "--eval-every", 10, "--metrics-every", 1, "--keep-last"])
    assert result.exit_code == 0, result.output
    assert "4,064 parameters" not in result.output  # this data has 24 characters, not 26
    assert "20 steps" in result.output and "held-out" in result.output
    ckpt = checkpoint.load(out)
    assert ckpt.config.n_embd == 16 and ckpt.vocab.size == len(set(NAMES) - {"\n"}) + 1
    assert ckpt.training["steps"] == 20 and ckpt.training["batch_size"] == 4
    assert ckpt.training["held_out"] == 6 and np.isfinite(ckpt.training["val_loss"])
    assert (ckpt.training["ema"], ckpt.training["weights"]) == (0.0, "step")
    lines = [json.loads(l) for l in (tmp_path / "m.metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, 21))
    assert [r["step"] for r in lines if "val_loss" in r] == [10, 20]
    assert lines[-1]["val_loss"] == pytest.approx(ckpt.training["val_loss"], rel=5e-6)  # 6 significant digits

    # mgpt-eval agrees with the held-out figure when given the held-out documents
    score = run(eval_command, [out, "--data", names])
    assert score.exit_code == 0, score.output
    assert "nats/token" in score.output


def test_fine_tuning_starts_from_the_checkpoint(tmp_path, names):
    base, tuned = tmp_path / "base.npz", tmp_path / "tuned.npz"
    assert run(train_command, ["--data", names, "--out", base, "--steps", 5]).exit_code == 0
    result = run(train_command, ["--data", names, "--out", tuned, "--steps", 5, "--init-from", base])
    assert result.exit_code == 0, result.output
    a, b = checkpoint.load(base), checkpoint.load(tuned)
    assert a.vocab == b.vocab and b.training["init_from"] == str(base)
    # five small Adam steps move each weight by at most 5 * lr
    assert max(np.max(np.abs(a.params[k] - b.params[k])) for k in a.params) <= 5 * 0.01 + 1e-12


def test_documents_may_be_any_unicode_with_crlf_and_blank_lines(tmp_path):
    path = tmp_path / "w.txt"
    path.write_bytes("\ufeffzoë\r\n\r\n  \r\nnaïve\r\nłódź\n日本\n".encode())
    assert read_documents(path) == ["zoë", "naïve", "łódź", "日本"]
    out = tmp_path / "w.npz"
    result = run(train_command, ["--data", path, "--out", out, "--steps", 3, "--val-fraction", 0])
    assert result.exit_code == 0, result.output
    assert "".join(checkpoint.load(out).vocab.chars) == "".join(sorted(set("zoënaïvełódź日本")))


def test_long_documents_are_truncated_and_counted(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("abcdefghij\nabc\nabcdefgh\n")  # 10 and 8 letters do not fit block 8 with their end
    result = run(train_command, ["--data", path, "--out", tmp_path / "l.npz", "--steps", 2, "--val-fraction", 0])
    assert result.exit_code == 0, result.output
    assert "2 longer than the block" in result.output


GOOD = b"a good checkpoint that must survive"


@pytest.mark.parametrize("make_args,words", [
    (lambda d: ["--data", d / "missing.txt"], ["does not exist"]),
    (lambda d: ["--data", (d / "empty.txt").write_bytes(b"") and d / "empty.txt" or d / "empty.txt"], ["empty"]),
    (lambda d: ["--data", (d / "latin1.txt").write_bytes("zoë\n".encode("latin-1")) and d / "latin1.txt"], ["UTF-8"]),
    (lambda d: ["--data", (d / "blank.txt").write_text("\n \n\r\n") and d / "blank.txt"], ["no documents"]),
    (lambda d: ["--data", d], ["directory"]),
    (lambda d: ["--n-embd", 10, "--n-head", 4], ["not divisible"]),
    (lambda d: ["--steps", 0], ["--steps"]),
    (lambda d: ["--batch-size", -2], ["--batch-size"]),
    (lambda d: ["--lr", 0], ["--lr"]),
    (lambda d: ["--lr", -0.1], ["--lr"]),
    (lambda d: ["--block-size", 0], ["--block-size"]),
    (lambda d: ["--val-fraction", 1.0], ["--val-fraction"]),
    (lambda d: ["--dropout", 1.0], ["--dropout"]),
    (lambda d: ["--ema", 1.0], ["--ema"]),
    (lambda d: ["--ema", -0.5], ["--ema"]),
    (lambda d: ["--dtype", "float16"], ["--dtype"]),
    (lambda d: ["--time-limit", 0], ["--time-limit"]),
    (lambda d: ["--warmup", -1], ["--warmup"]),
    (lambda d: ["--weight-decay", -0.1], ["--weight-decay"]),
    (lambda d: ["--metrics-every", 0], ["--metrics-every"]),
    (lambda d: ["--blas-threads", 0], ["--blas-threads"]),
    (lambda d: ["--init-from", d / "missing.npz"], ["does not exist"]),
    (lambda d: ["--init-from", (d / "junk.npz").write_bytes(b"PK\x03\x04 torn") and d / "junk.npz"], ["not a readable"]),
])
def test_bad_input_is_one_line_and_leaves_the_checkpoint_alone(tmp_path, names, make_args, words):
    out = tmp_path / "keep.npz"
    out.write_bytes(GOOD)
    args = ["--data", names, "--out", out, "--steps", 3] + make_args(tmp_path)
    result = run(train_command, args)
    assert_one_line_error(result, *words)
    assert out.read_bytes() == GOOD


def test_a_diverged_run_leaves_out_and_its_log_alone_and_keeps_the_last_finite_weights_beside(tmp_path, names):
    out, log = tmp_path / "nan.npz", tmp_path / "nan.metrics.jsonl"
    out.write_bytes(GOOD)
    log.write_bytes(b"the good run's log\n")
    result = run(train_command, ["--data", names, "--out", out, "--steps", 5, "--lr", 1e200])
    kept = tmp_path / "nan.diverged.npz"
    assert_one_line_error(result, "non-finite", "step 2", "lower --lr", f"{out} was left as it was",
                          f"weights of step 1 are in {kept}")
    assert out.read_bytes() == GOOD and log.read_bytes() == b"the good run's log\n"
    ckpt = checkpoint.load(kept)  # loading checks every weight is finite
    assert ckpt.training["stopped"] == "diverged" and ckpt.training["steps"] == 1
    lines = (tmp_path / "nan.diverged.metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 1 and json.loads(lines[-1])["run"] == ckpt.training["run"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_init_from_must_cover_the_data_and_keep_its_shape(tmp_path, names):
    base = tmp_path / "base.npz"
    assert run(train_command, ["--data", names, "--out", base, "--steps", 2]).exit_code == 0
    other = tmp_path / "other.txt"
    other.write_text("zoë\n")
    result = run(train_command, ["--data", other, "--out", tmp_path / "x.npz", "--init-from", base])
    assert_one_line_error(result, "vocabulary", "ë")
    result = run(train_command, ["--data", names, "--out", tmp_path / "x.npz", "--init-from", base, "--n-embd", 32])
    assert_one_line_error(result, "--n-embd")


def test_init_from_rejects_a_checkpoint_whose_arrays_disagree_with_its_config(tmp_path, names):
    base = tmp_path / "base.npz"
    assert run(train_command, ["--data", names, "--out", base, "--steps", 2]).exit_code == 0
    ckpt = checkpoint.load(base)
    arrays = dict(ckpt.params, meta=np.array(json.dumps(ckpt.meta())), novelty=ckpt.novelty.data)
    arrays["wte"] = arrays["wte"][:, :8]
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    result = run(train_command, ["--data", names, "--out", tmp_path / "x.npz", "--init-from", bad])
    assert_one_line_error(result, "wte", "shape")


@pytest.mark.parametrize("where,words", [("missing-dir/m.npz", ["does not exist"]), (".", ["directory"])])
def test_unwritable_outputs_fail_before_training(tmp_path, names, where, words):
    result = run(train_command, ["--data", names, "--out", tmp_path / where, "--steps", 2])
    assert_one_line_error(result, *words)


def test_eval_rejects_text_outside_the_vocabulary(tmp_path, names):
    base = tmp_path / "base.npz"
    assert run(train_command, ["--data", names, "--out", base, "--steps", 2]).exit_code == 0
    other = tmp_path / "other.txt"
    other.write_text("zoë\n")
    assert_one_line_error(run(eval_command, [base, "--data", other]), "vocabulary")
    assert_one_line_error(run(eval_command, [tmp_path / "nope.npz", "--data", names]), "does not exist")


def test_eval_is_the_mean_nll_over_predicted_tokens(tmp_path, names):
    base = tmp_path / "base.npz"
    assert run(train_command, ["--data", names, "--out", base, "--steps", 2]).exit_code == 0
    ckpt = checkpoint.load(base)
    docs = read_documents(names)
    total = count = 0.0
    for d in docs:  # one document at a time through the reference step
        ids = ckpt.vocab.encode_document(d)
        keys, values = model.empty_cache(ckpt.config, 1)
        for pos in range(min(8, len(ids) - 1)):
            logits, keys, values = model.step(ckpt.params, ckpt.config, [ids[pos]], pos, keys, values)
            z = logits[0] - logits[0].max()
            total += np.log(np.exp(z).sum()) - z[ids[pos + 1]]
            count += 1
    output = run(eval_command, [base, "--data", names]).output
    assert float(output.split()[0]) == pytest.approx(total / count, abs=1e-4)


@pytest.mark.parametrize("extra,weights", [([], "step"), (["--ema", "0.99"], "moving average")])
def test_ctrl_c_saves_a_valid_checkpoint_of_the_progress(tmp_path, names, extra, weights):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "int.npz"
    proc = subprocess.Popen([sys.executable, "-c", "from mgpt.train.cli import train_command; train_command()",
                             "--data", str(names), "--out", str(out), "--steps", "100000000", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size for p in tmp_path.glob(".int.metrics.jsonl.*")):  # training has begun
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted after" in stderr
    ckpt = checkpoint.load(out)
    assert ckpt.training["stopped"] == "interrupted" and ckpt.training["weights"] == weights
    # the held-out loss recorded is the saved weights' (with --ema, the average's)
    held = split(read_documents(names), 0.03)[1]
    assert evaluate(ckpt.params, ckpt.config, ckpt.vocab, held) == pytest.approx(ckpt.training["val_loss"], abs=1e-12)
    steps = ckpt.training["steps"]
    assert 0 < steps < 100000000
    assert json.loads((tmp_path / "int.metrics.jsonl").read_text().splitlines()[-1])["step"] == steps


def metrics_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_metrics_log_is_every_n_steps_plus_evaluations_with_mean_losses(tmp_path, names):
    args = ["--data", names, "--steps", 25, "--batch-size", 2, "--val-fraction", 0.2, "--eval-every", 7, "-q"]
    assert run(train_command, args + ["--out", tmp_path / "all.npz", "--metrics-every", 1]).exit_code == 0
    result = run(train_command, args + ["--out", tmp_path / "some.npz"])  # the default: every 10 steps
    assert result.exit_code == 0, result.output
    every = metrics_lines(tmp_path / "all.metrics.jsonl")
    some = metrics_lines(tmp_path / "some.metrics.jsonl")
    assert [r["step"] for r in every] == list(range(1, 26))
    assert [r["step"] for r in some] == [7, 10, 14, 20, 21, 25]  # evaluations at 7, 14, 21 and the last
    previous = 0
    for line in some:  # each line's loss is the mean of the steps since the line before
        steps = every[previous : line["step"]]
        assert line["loss"] == pytest.approx(np.mean([r["loss"] for r in steps]), rel=5e-6)  # 6 significant digits
        assert line["lr"] == every[line["step"] - 1]["lr"] and line["seconds"] >= 0
        assert ("val_loss" in line) == (line["step"] % 7 == 0 or line["step"] == 25)
        previous = line["step"]


def test_the_default_log_takes_under_10_bytes_a_step():
    # 100,000 steps of a realistic 400 s run through the real log, as mgpt-train feeds it (a line
    # every 10 steps, an evaluation every 100): docs/formats.md's 0.88 MB for 100,000 steps
    import io

    from mgpt.train.progress import MetricsLog

    rng, steps, file = np.random.default_rng(0), 100_000, io.StringIO()
    log = MetricsLog(file, 10, run="7fd47d1e615364dc")
    for step in range(1, steps + 1):
        record = {"step": step, "lr": 0.01 * (1 - (step - 1) / steps), "loss": 1.5 + 2 * rng.random(),
                  "seconds": 0.004 * step + 1e-5 * rng.random()}
        if step % 100 == 0:
            record["val_loss"] = 1.5 + 2 * rng.random()
        log(record | {"last": True} if step == steps else record)
    log.flush()
    text = file.getvalue()
    assert len(text.encode()) / steps < 10
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == steps // 10 and lines[-1]["step"] == steps and "last" not in lines[-1]
    assert sum("val_loss" in line for line in lines) == steps // 100


@pytest.mark.parametrize("extra,shown", [([], ["step 10/30", "step 20/30", "step 30/30"]), (["-q"], [])])
def test_progress_lines_without_a_terminal_even_with_nothing_held_out(tmp_path, names, extra, shown):
    result = run(train_command, ["--data", names, "--out", tmp_path / "m.npz", "--steps", 30, "--val-fraction", 0,
                                 "--eval-every", 10] + extra)
    assert result.exit_code == 0, result.output
    progress = [line for line in result.output.splitlines() if line.startswith("step ")]
    assert [line.split(" | ")[0] for line in progress] == shown
    summary = [line for line in result.output.splitlines() if line.startswith("30 steps in")]
    assert len(summary) == 1 and "held-out" not in summary[0]  # nothing held out, no evaluation to time
    assert all("steps/s" in line and "elapsed" in line for line in progress)


def test_the_new_options_are_recorded_in_the_checkpoint(tmp_path, names):
    out = tmp_path / "m.npz"
    result = run(train_command, ["--data", names, "--out", out, "--steps", 12, "--weight-decay", 0.1, "--warmup", 5,
                                 "--dropout", 0.1, "--dtype", "float32", "--val-fraction", 0.2, "--pack",
                                 "--ema", 0.9])
    assert result.exit_code == 0, result.output
    record = checkpoint.load(out).training
    assert (record["weight_decay"], record["warmup"], record["dropout"], record["dtype"]) == (0.1, 5, 0.1, "float32")
    assert record["pack"] is True and (record["ema"], record["weights"]) == (0.9, "moving average")
    assert record["time_limit"] is None and 1 <= record["best_step"] <= 12
    assert record["blas_threads"] == [1]  # a small model never tries a second thread


def test_a_time_limit_without_steps_trains_until_the_time_is_spent(tmp_path, names):
    out = tmp_path / "m.npz"
    result = run(train_command, ["--data", names, "--out", out, "--time-limit", 0.5, "--val-fraction", 0.2])
    assert result.exit_code == 0, result.output
    record = checkpoint.load(out).training
    assert record["steps_planned"] is None and record["time_limit"] == 0.5 and record["steps"] >= 1
    last = metrics_lines(tmp_path / "m.metrics.jsonl")[-1]
    assert last["step"] == record["steps"] and last["seconds"] >= 0.5 and "val_loss" in last


def test_on_a_terminal_the_progress_is_one_redrawn_bar():
    from mgpt.train.progress import Progress

    shown = []
    progress = Progress(lambda text, nl: shown.append((text, nl)), tty=True, steps=4, time_limit=None, every=100)
    for step in range(1, 5):
        record = {"step": step, "lr": 0.01, "loss": 2.0 + step, "seconds": 0.5 * step}
        if step == 4:
            record["last"] = True
        if step == 2:
            record["val_loss"] = 1.5
        progress(record)
    assert all(text.startswith("\r[") for text, _ in shown)  # redrawn in place
    assert [nl for _, nl in shown] == [False] * (len(shown) - 1) + [True]  # a newline after the last step only
    text = shown[-1][0]
    assert "[####################]" in text and "step 4/4" in text and "held-out 1.5000" in text
    assert "2 steps/s" in text and "2.0s elapsed" in text
    middle = [t for t, _ in shown if "step 2/4" in t][0]
    assert "[##########..........]" in middle and "1.0s left" in middle and "loss 3.5000" in middle


def test_a_time_limited_run_shows_and_logs_its_last_step(tmp_path, names):
    # the last step is rarely a multiple of --eval-every: the progress must still show it
    out = tmp_path / "m.npz"
    result = run(train_command, ["--data", names, "--out", out, "--time-limit", 0.2, "--val-fraction", 0,
                                 "--eval-every", 200, "--metrics-every", 7])
    assert result.exit_code == 0, result.output
    steps = checkpoint.load(out).training["steps"]
    shown = [line.split(" | ")[0] for line in result.output.splitlines() if line.startswith("step ")]
    assert shown[-1] == f"step {steps}"
    assert metrics_lines(tmp_path / "m.metrics.jsonl")[-1]["step"] == steps


def test_a_time_limit_shorter_than_a_step_trains_one_step(tmp_path, names):
    out = tmp_path / "m.npz"
    result = run(train_command, ["--data", names, "--out", out, "--time-limit", 1e-9, "--val-fraction", 0.2])
    assert result.exit_code == 0, result.output
    assert "1 step in" in result.output and "nan" not in result.output
    record = checkpoint.load(out).training
    assert record["steps"] == 1 and np.isfinite(record["train_loss"]) and np.isfinite(record["val_loss"])
    assert "val_loss" in metrics_lines(tmp_path / "m.metrics.jsonl")[-1]


def raw_meta(path):
    """The checkpoint's meta entry as written, before any parsing."""
    return str(np.load(path, allow_pickle=False)["meta"])


def test_a_run_stopped_before_its_first_step_records_no_train_loss(tmp_path, names, monkeypatch):
    def interrupted(*args, **kwargs):  # Ctrl-C in the middle of the first step
        raise KeyboardInterrupt

    monkeypatch.setattr(model, "loss_and_grads", interrupted)
    out = tmp_path / "m.npz"
    result = run(train_command, ["--data", names, "--out", out, "--val-fraction", 0.2])
    assert result.exit_code == 130 and "Traceback" not in result.output, result.output
    assert "interrupted after 0 of 500 steps" in result.output
    summary = [line for line in result.output.splitlines() if line.startswith("0 steps in")]
    assert len(summary) == 1 and "; loss" not in summary[0] and "; held-out" in summary[0], result.output
    meta = raw_meta(out)
    assert '"train_loss": null' in meta and "NaN" not in meta
    assert checkpoint.load(out).training["train_loss"] is None


def test_checkpoint_meta_never_holds_nan_or_infinity(tmp_path):
    ckpt = checkpoint.Checkpoint(GPTConfig(3), Vocab(("a", "b")), model.views(model.init_params(GPTConfig(3), 0),
                                 GPTConfig(3)), {"train_loss": float("nan"), "seconds": [float("inf"), 1.5]})
    path = tmp_path / "c.npz"
    checkpoint.save(path, ckpt)
    assert json.loads(raw_meta(path), parse_constant=pytest.fail)["training"] == {"train_loss": None,
                                                                                   "seconds": [None, 1.5]}
    # a hand-made checkpoint with NaN in its meta loads with null there, as mgpt would have written it
    meta = raw_meta(path).replace('"train_loss": null', '"train_loss": NaN')
    np.savez(path, **ckpt.params, meta=np.array(meta))
    assert checkpoint.load(path).training["train_loss"] is None
