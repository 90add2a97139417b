"""Reference data for the JavaScript runtime's tests, made by the Python runtime: models, samples,
uniforms, draws, logits and scores that the JavaScript side must reproduce, plus model files that
both must refuse. ``python tests/js_reference.py DIR`` writes them to DIR (``reference.json`` and
the ``.onnx`` files), for running ``node --test`` in ``runtime/js`` by hand.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))  # runtime_models, when run as a script

import engines  # noqa: E402
import mgpt.models  # noqa: E402
import runtime_models  # noqa: E402
from mgpt.export import DEFAULT_OPSET, build_model, export, small, supported_opsets  # noqa: E402
from mgpt.runtime import Generator, SamplingError, default_model_path, sampling, shipped_model_path  # noqa: E402
from mgpt.runtime.metadata import LOGITS, POSITION, TOKEN, past_names  # noqa: E402
from mgpt.train import Checkpoint, GPTConfig, TrainOptions, load, save, train  # noqa: E402

# A tiny non-ASCII corpus: accents, Greek, CJK and an emoji outside the BMP (two UTF-16 units in
# JavaScript, one character in Python), so the vocabulary's order and lengths are put to the test.
NON_ASCII_DOCS = ["ñandú", "çedilla", "αβγ", "γάτα", "日本", "本日", "crème", "brûlée", "😀ok", "ok😀", "zoë",
                  "ångström", "øre", "łódź", "straße"] * 4

SEEDS = [1, 2**64 + 5, -7, 123456789012345678901234567890, 0]  # taken mod 2^64, any sign or size

# (options, seed, count): over 1,000 samples per model, several temperatures, top-k, top-p, a prefix
SAMPLE_CASES = [
    ({"temperature": 0.5}, 1, 300),
    ({"temperature": 1.0, "top_k": 5}, 2**64 + 5, 250),
    ({"temperature": 1.5, "top_p": 0.9}, -7, 250),
    ({"temperature": 0.8, "top_k": 10, "top_p": 0.8, "prefix": "PREFIX"}, 123456789012345678901234567890, 200),
    ({"temperature": 2.0, "max_length": 4}, 0, 100),
    ({"temperature": 2.0, "max_length": 1}, 3, 50),  # the first draw, from the prefill's logits, is the last
    ({"temperature": 0.0}, 5, 3),
    ({"temperature": 0.0, "prefix": "PREFIX"}, 5, 2),
]
# the larger shipped model (3 layers, block 16): fewer samples, to keep the tests quick
LARGE_SAMPLE_CASES = SAMPLE_CASES[:1] + SAMPLE_CASES[3:6]
# a labeled model (runtime_models.labeled_checkpoint, block 8 less 2 label tokens): labels with the other options
LABELED_SAMPLE_CASES = [
    ({"labels": ["F", "1950s"], "temperature": 0.5}, 1, 300),
    ({"labels": ["x y", "M"], "temperature": 1.0, "top_k": 3}, 2**64 + 5, 250),
    ({"labels": ["M", "2010s"], "temperature": 1.5, "top_p": 0.9, "prefix": "PREFIX"}, -7, 250),
    ({"labels": ["F", "2010s"], "temperature": 2.0, "max_length": 3}, 0, 200),
    ({"labels": ["M", "1950s"], "temperature": 2.0, "max_length": 1}, 3, 50),
    ({"labels": ["F", "x y"], "temperature": 0.0}, 5, 3),
    ({"labels": ["M", "1950s"], "temperature": 1.0, "min_length": 3, "suffix": "a"}, 8, 100),  # shape masks by characters
    ({"labels": ["F", "2010s"], "temperature": 1.0, "pattern": "[aeiou][lns].*"}, 9, 100),
]
# a labeled model trained on runtime_models.ending_lines (labels A | O, L | S; block 10): the round trip
# from labeled training data to JavaScript's samples
ENDINGS_SAMPLE_CASES = [
    ({"labels": ["A", "S"], "temperature": 0.5}, 1, 300),
    ({"labels": ["L", "O"], "temperature": 1.0, "top_p": 0.9, "prefix": "PREFIX"}, 2, 300),
    ({"labels": ["O", "S"], "temperature": 1.5, "top_k": 4}, -7, 300),
    ({"labels": ["A", "L"], "temperature": 1.0, "contains": "e"}, 3, 150),
    ({"labels": ["A", "L"], "temperature": 0.0}, 5, 2),
]
# the shipped labeled model (3 layers, block 18): few samples, as names-large
ERA_SAMPLE_CASES = [
    ({"labels": ["M", "1950s"], "temperature": 0.5}, 1, 100),
    ({"labels": ["2010s", "F"], "temperature": 1.0, "top_k": 10, "prefix": "PREFIX"}, 2, 100),
    ({"labels": ["F", "1910s"], "temperature": 1.0, "suffix": "ie"}, 3, 50),
]


# Sampling controls (docs/sampling-controls.md). reference.json's "controls" holds, per case: "file"
# (a model written beside reference.json), "options" (Python's keyword names: temperature, top_k,
# top_p, prefix, max_length, min_length, suffix, contains, pattern, novel, unique, exclude,
# max_attempts; JavaScript takes them camelCased), "seed" (a decimal string), "count" (samples asked
# for), and either "samples" (what generate returns) or "error": {"found", "attempts", "samples",
# "message"} when the attempt cap is reached (SamplingError). "traces" holds, per case: "file",
# "options", "seed", "index" and "trace", the object Generator.trace returns (steps' p and uniform as
# float64 numbers: compare p within 1e-6, the rest exactly).
CONTROL_CASES = {  # file -> [(options, seed, count)]: over 1,000 constrained samples in all
    "names.onnx": [
        ({"temperature": 0.5, "pattern": "[a-z]{4,6}(a|ie)"}, 1, 200),
        ({"temperature": 1.0, "suffix": "yn", "min_length": 5}, 2, 150),
        ({"temperature": 0.8, "top_k": 10, "contains": "ar", "prefix": "m"}, 3, 150),
        ({"temperature": 0.5, "novel": True, "unique": True}, 4, 200),
        ({"temperature": 0.3, "unique": True, "exclude": ["emma", "ava", "mia", "liam", "noah"]}, 5, 100),
        ({"temperature": 1.2, "top_p": 0.9, "novel": True, "pattern": "(ka|ja)[a-z]*"}, 2**64 + 5, 150),
        ({"temperature": 1.5, "min_length": 3, "max_length": 5, "novel": True}, -7, 100),
        ({"temperature": 0.0, "pattern": "[a-z]{5}", "unique": True, "max_attempts": 30}, 6, 3),  # the cap
        ({"temperature": 0.0, "suffix": "a", "min_length": 4}, 7, 2),
    ],
    "names-large.onnx": [
        ({"temperature": 0.5, "novel": True, "unique": True, "pattern": "[a-z]{4,8}(a|ie|yn)"}, 8, 100),
        ({"temperature": 1.0, "suffix": "ella", "prefix": "b"}, 9, 50),
    ],
    "non_ascii.onnx": [
        ({"temperature": 1.0, "pattern": "[^a-z]+"}, 10, 50),
        ({"temperature": 1.0, "contains": "😀", "unique": True}, 11, 30),
    ],
}
TRACE_CASES = {  # file -> [(options, seed, index)]
    "names.onnx": [({"temperature": 0.5}, 1, 0), ({"temperature": 0.5}, 1, 2),
                   ({"temperature": 0.8, "prefix": "ma", "pattern": "ma[a-z]*(a|n)", "unique": True}, 4, 3),
                   ({"temperature": 0.5, "novel": True, "top_k": 5}, 12, 1), ({"temperature": 0.0}, 0, 0),
                   ({"temperature": 1.0, "min_length": 8}, 13, 0)],
    "names-large.onnx": [({"temperature": 1.0, "suffix": "ella", "top_p": 0.8}, 9, 4)],
    "non_ascii.onnx": [({"temperature": 1.0, "contains": "😀"}, 11, 0)],
}


def controls_reference(directory: Path) -> tuple[list[dict], list[dict]]:
    cases, traces = [], []
    for file, rows in CONTROL_CASES.items():
        gen = Generator(directory / file)
        for options, seed, count in rows:
            case = {"file": file, "options": options, "seed": str(seed), "count": count}
            try:
                case["samples"] = gen.generate(count, seed=seed, **options)
            except SamplingError as e:
                case["error"] = {"found": e.found, "attempts": e.attempts, "samples": e.samples, "message": str(e)}
            cases.append(case)
    for file, rows in TRACE_CASES.items():
        gen = Generator(directory / file)
        for options, seed, index in rows:
            traces.append({"file": file, "options": options, "seed": str(seed), "index": index,
                           "trace": gen.trace(seed=seed, index=index, **options)})
    return cases, traces


# onnxruntime's messages as its Python and JavaScript packages word them, and the reason each runtime
# keeps of them (mgpt.runtime's onnxruntime_reason, the JavaScript runtime's firstLine); the tests
# of both hold them to this table
ONNXRUNTIME_MESSAGES = {
    "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Non-zero status code returned while running Gather node.":
        "Non-zero status code returned while running Gather node.",
    "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from /m/x.onnx failed:Protobuf parsing failed.":
        "Protobuf parsing failed.",
    "Can't create a session. ERROR_CODE: 1, ERROR_MESSAGE: /mnt/_work/1/s/onnxruntime/core/graph/"
    "model_load_utils.h:56 void onnxruntime::model_load_utils::ValidateOpsetForDomain(const "
    "std::unordered_map<std::basic_string<char>, int>&, const onnxruntime::logging::Logger&, bool, const "
    "string&, int) ONNX Runtime only *guarantees* support for opsets up to 26\nsecond line":
        "ONNX Runtime only *guarantees* support for opsets up to 26",
    "Load model from x.onnx failed:/src/core/graph/model.cc:181 onnxruntime::Model::Model(f(a), b) const "
    "Unsupported model IR version: 99":
        "Unsupported model IR version: 99",
    "a reason with (parentheses) of its own": "a reason with (parentheses) of its own",
    "x" * 600: "x" * 500,
}


def non_ascii_model(directory: Path) -> Path:
    """A 2-layer model (2 heads of 8, block 12) trained for a few steps on NON_ASCII_DOCS, then
    exported (and verified) by mgpt.export.export."""
    result = train(NON_ASCII_DOCS, [], GPTConfig(1, n_layer=2, n_embd=16, n_head=2, block_size=12),
                   TrainOptions(steps=40, batch_size=8, seed=3, eval_every=40))
    ckpt = directory / "non_ascii.npz"
    save(ckpt, Checkpoint(result.config, result.vocab, result.params, {"steps": 40}))
    export(ckpt, directory / "non_ascii.onnx")
    ckpt.unlink()
    return directory / "non_ascii.onnx"


def model_reference(path: Path, prefix: str, sample_cases=SAMPLE_CASES, labels: list[str] | None = None) -> dict:
    """A model's samples for ``sample_cases``, a rollout's logits and a score (given ``labels`` for
    a labeled model), for the JavaScript runtime to match."""
    gen = Generator(path)
    cases = []
    for options, seed, count in sample_cases:
        options = {k: (prefix if v == "PREFIX" else v) for k, v in options.items()}
        cases.append({"options": options, "seed": str(seed), "samples": gen.generate(count, seed=seed, **options)})
    texts = gen.generate(50, seed=11, temperature=1.0, labels=labels) + [prefix, "", prefix * 20]
    return {"file": path.name, "block_size": gen.block_size, "chars": list(gen.vocab.chars),
            "labels": [list(g) for g in gen.vocab.labels],
            "n_layer": gen.info.n_layer, "n_head": gen.info.n_head, "head_dim": gen.info.head_dim,
            "training": gen.info.training, "cases": cases, "rollout": rollout(path, gen),
            "score": {"texts": texts, "labels": labels, "nll": gen.score(texts, labels=labels)},
            "trace": gen.trace(temperature=1.0, seed=11, index=3, labels=labels) if labels else None}


def rollout(path: Path, gen: Generator, rows: int = 128) -> dict:
    """Python's onnxruntime logits over a whole rollout: ``rows`` rows of random tokens (BOS among
    them) fed at every position, each step's present cache fed back."""
    info = gen.info
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    tokens = np.random.default_rng(0).integers(0, info.vocab_size, size=(gen.block_size, rows))
    empty = np.zeros((rows, info.n_head, 0, info.head_dim), np.float32)
    feed = {name: empty for i in range(info.n_layer) for name in past_names(i)}
    logits = []
    for p in range(gen.block_size):
        feed |= {TOKEN: tokens[p], POSITION: np.array(p, np.int64)}
        out = session.run(None, feed)
        names = [o.name for o in session.get_outputs()]
        result = dict(zip(names, out))
        logits.append(result[LOGITS].tolist())
        for i in range(info.n_layer):
            for past in past_names(i):
                feed[past] = result[past.replace("past_key_values", "present")]
    return {"tokens": tokens.tolist(), "logits": logits}


def uniforms_reference() -> list[dict]:
    indices = [0, 1, 2, 1000, 2**40, 2**53 - 1]
    return [{"seed": str(seed), "indices": indices,
             "u": sampling.uniforms(seed, np.array(indices, dtype=np.uint64), 16).tolist()} for seed in SEEDS]


def draws_reference(rows: int = 3000) -> list[dict]:
    """draw_one over random rows of logits (rounded to quarters so that ties occur), uniforms and
    options: the rule itself, apart from any model."""
    rng = np.random.default_rng(1)
    out = []
    for r in range(rows):
        size = int(rng.integers(2, 40))
        logits = (np.round(rng.normal(0, 2, size) * 4) / 4).astype(np.float32).tolist()
        if r % 7 == 0:
            logits = np.float32(rng.normal(0, 3, size)).tolist()  # no ties, full float32 precision
        temperature = float(rng.choice([0.0, 0.3, 0.5, 1.0, 1.7]))
        top_k = int(rng.integers(1, size + 3)) if rng.random() < 0.5 else None
        top_p = float(rng.choice([0.1, 0.5, 0.9, 0.999, 1.0])) if rng.random() < 0.5 else None
        u = float(rng.random())
        out.append({"logits": logits, "u": u, "temperature": temperature, "top_k": top_k, "top_p": top_p,
                    "token": sampling.draw_one(logits, u, temperature, top_k, top_p)})
    return out


def bad_models(directory: Path) -> dict[str, str]:
    """Files that are not usable mgpt step graphs -> a fragment of the error each must give."""
    ckpt = runtime_models.random_checkpoint("abc")
    good = onnx.load(str(default_model_path()))
    bad = {}

    def variant(name: str, props: dict[str, str], expect: str):
        model = onnx.ModelProto()
        model.CopyFrom(good)
        del model.metadata_props[:]
        for key, value in props.items():
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, str(directory / name))
        bad[name] = expect

    props = {p.key: p.value for p in good.metadata_props}
    variant("version2.onnx", props | {"format_version": "2"}, "format version")
    variant("no_format.onnx", {k: v for k, v in props.items() if k != "format"}, "no format")
    variant("bad_vocab.onnx", props | {"vocab": json.dumps(list("abcdefghijklmnopqrstuvwxzy"))}, "sorted")
    variant("vocab_not_chars.onnx", props | {"vocab": json.dumps(["ab"] + list("cdefghijklmnopqrstuvwxyz"))},
            "single character")
    variant("vocab_not_json.onnx", props | {"vocab": "[a, b"}, "malformed")
    variant("bos.onnx", props | {"bos": "25"}, "disagrees")
    variant("long_key.onnx", props | {"training": '{"%s": 1, "%s": 2}' % ("k" * 100_000, "k" * 100_000)},
            "repeats a key")
    variant("n_embd.onnx", props | {"n_head": "2", "head_dim": "8"}, "past_key_values.0.key")
    variant("n_layer.onnx", props | {"n_layer": "2"}, "lacks")
    variant("block_size.onnx", props | {"block_size": "1000000000"}, "more than the file's")
    variant("block_size_9.onnx", props | {"block_size": "9"}, "its step at position 8 fails")  # wpe has 8 rows
    variant("training_twice.onnx", props | {"training": '{"steps": 1, "steps": 2}'}, "repeats a key")
    # Python's json.dumps writes these by default; neither runtime reads them (mgpt-export writes null)
    variant("training_nan.onnx", props | {"training": '{"steps": 0, "train_loss": NaN}'}, "NaN is not standard JSON")
    variant("training_infinity.onnx", props | {"training": '{"val_loss": -Infinity}'}, "-Infinity is not standard JSON")
    variant("line_break.onnx", props | {"vocab": json.dumps(["\n"] + list("bcdefghijklmnopqrstuvwxyz"))},
            "line break")
    # hostile sizes and lengths: the check must refuse them before building anything that large, and
    # say so in a short message
    variant("n_layer_100000.onnx", props | {"n_layer": "100000"}, "it has 4 inputs, but n_layer 100,000 needs 200,002")
    variant("n_layer_12_digits.onnx", props | {"n_layer": "999999999999"},
            "n_layer 999,999,999,999 needs 2,000,000,000,000")
    variant("long_value.onnx", props | {"n_head": "4" * 50 + "x" * 100_000}, "not a plain positive integer")
    variant("spaced_int.onnx", props | {"n_head": " 4"}, "not a plain positive integer")
    variant("not_int.onnx", props | {"n_head": "four"}, "n_head")
    duplicated = onnx.ModelProto()
    duplicated.CopyFrom(good)
    duplicated.metadata_props.add(key="vocab", value=props["vocab"])
    onnx.save(duplicated, str(directory / "duplicate.onnx"))
    bad["duplicate.onnx"] = "repeats the key"
    runtime_models.identity_model(directory / "identity.onnx")
    bad["identity.onnx"] = "no format"
    hollow = onnx.load(str(runtime_models.hollow_model(directory / "hollow.onnx", ckpt)))
    hollow.ir_version = 8  # what mgpt-export writes for opset 17; onnxruntime-node 1.30 reads up to 13
    onnx.save(hollow, str(directory / "hollow.onnx"))
    bad["hollow.onnx"] = "returns logits of shape"  # Python shows it (1, 3), JavaScript [1,3]
    many = onnx.ModelProto()
    many.CopyFrom(good)  # inputs that nothing reads, each with a long name
    many.graph.input.extend(onnx.helper.make_tensor_value_info(f"{i:04}" + "x" * 300, onnx.TensorProto.FLOAT, [1])
                            for i in range(1000))
    onnx.save(many, str(directory / "many_inputs.onnx"))
    bad["many_inputs.onnx"] = "has unexpected"
    (directory / "text.onnx").write_text("this is not a model\n")
    bad["text.onnx"] = "not an ONNX model"
    data = default_model_path().read_bytes()
    (directory / "truncated.onnx").write_bytes(data[: len(data) // 2])
    bad["truncated.onnx"] = "not an ONNX model"
    (directory / "empty.onnx").write_bytes(b"")
    bad["empty.onnx"] = "not an ONNX model"
    return bad


def non_finite_model(path: Path) -> Path:
    """The shipped model with the embedding of "z" made NaN: it loads (its check never feeds "z"),
    then every step after a "z" gives non-finite logits."""
    model = onnx.load(str(default_model_path()))
    wte = next(t for t in model.graph.initializer if t.name == "wte")
    table = onnx.numpy_helper.to_array(wte).copy()
    table[25] = np.nan
    wte.CopyFrom(onnx.numpy_helper.from_array(table, "wte"))
    onnx.save(model, str(path))
    return path


def non_finite_record_model(path: Path) -> dict:
    """A model exported from a checkpoint whose training record has a loss of NaN (a run of 0 steps)
    and one of infinity: both runtimes must read the record mgpt-export writes (with null for them)."""
    ckpt = runtime_models.random_checkpoint("abc")
    record = {"steps": 0, "train_loss": float("nan"), "val_loss": float("inf")}
    save(path.with_suffix(".npz"), Checkpoint(ckpt.config, ckpt.vocab, ckpt.params, record))
    export(path.with_suffix(".npz"), path)
    path.with_suffix(".npz").unlink()
    return {"file": path.name, "training": Generator(path).info.training}


def newer_opset_model(path: Path, opset: int = 27) -> dict:
    """A model of an opset that Python's onnxruntime 1.32 runs and onnxruntime 1.30's JavaScript
    packages refuse (they run up to 26): their refusal must reach the app as its reason."""
    ckpt = path.with_suffix(".npz")
    save(ckpt, runtime_models.random_checkpoint("abc"))
    export(ckpt, path, opset=opset)
    ckpt.unlink()
    return {"file": path.name, "opset": opset}


# the newest opset that onnxruntime-node and onnxruntime-web 1.30 load (27 and 28 they refuse:
# "ONNX Runtime only *guarantees* support for opsets up to 26"); docs/engines.md's table says so
JS_NEWEST_OPSET = 26


def engine_rollouts(directory: Path) -> list[dict]:
    """Files of both graph forms (tests/engines.py's fresh shapes, the shipped models, the default
    shape at every opset the exporter accepts), each with the NumPy reference step's logits at every
    position and its final cache over rollouts of random tokens at batch 1 and batch 7: what
    tests/test_engines.py holds Python's engines to, and engines.test.js the JavaScript ones."""
    files = [(f"{name}.onnx", "shipped", load(shipped_model_path(name).with_suffix(".npz"))) for name in mgpt.models.NAMES]
    for name in engines.FRESH:
        ckpt = engines.fresh_checkpoint(name)
        opsets = supported_opsets() if name == "default" else [DEFAULT_OPSET]
        for opset in opsets:
            for general in [True] + ([False] if small.is_small(ckpt.config) else []):
                file = f"{name}-{'general' if general else 'small'}-opset{opset}.onnx"
                onnx.save(build_model(ckpt, opset, general=general), str(directory / file))
                files.append((file, "general" if general else "small", ckpt))
    out = []
    for file, form, ckpt in files:
        config = ckpt.config
        batches = {}
        for batch in (1, 7):
            tokens = engines.rollout_tokens(config, batch)
            want = engines.reference_rollout(ckpt, tokens)
            batches[str(batch)] = {"tokens": tokens.tolist(), "logits": [w[LOGITS].tolist() for w in want],
                                   "presents": {k: v.ravel().tolist() for k, v in want[-1].items() if k != LOGITS}}
        out.append({"file": file, "form": form, "opset": onnx.load(str(directory / file)).opset_import[0].version,
                    "n_layer": config.n_layer, "n_head": config.n_head, "head_dim": config.head_dim,
                    "block_size": config.block_size, "rollouts": batches})
    return out


def write_reference(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(default_model_path(), directory / "names.onnx")
    shutil.copy(default_model_path().with_name("names-large.onnx"), directory / "names-large.onnx")
    shutil.copy(default_model_path().with_name("names-era.onnx"), directory / "names-era.onnx")
    models = [model_reference(directory / "names.onnx", "ma"),
              model_reference(non_ascii_model(directory), "γά😀"),
              model_reference(directory / "names-large.onnx", "ma", LARGE_SAMPLE_CASES),
              model_reference(runtime_models.export_to(runtime_models.labeled_checkpoint(), directory / "labeled.onnx"),
                              "no", LABELED_SAMPLE_CASES, ["M", "x y"]),
              model_reference(runtime_models.export_to(runtime_models.trained_labeled_checkpoint(directory)[0],
                                                       directory / "endings.onnx"), "li", ENDINGS_SAMPLE_CASES, ["O", "L"]),
              model_reference(directory / "names-era.onnx", "ma", ERA_SAMPLE_CASES, ["F", "1950s"])]
    reference = {"models": models, "uniforms": uniforms_reference(), "draws": draws_reference(),
                 "bad_models": bad_models(directory), "non_finite": non_finite_model(directory / "nan_z.onnx").name,
                 "non_finite_record": non_finite_record_model(directory / "nan_record.onnx"),
                 "newer_opset": newer_opset_model(directory / "opset27.onnx"),
                 "engine_rollouts": engine_rollouts(directory), "js_newest_opset": JS_NEWEST_OPSET,
                 "onnxruntime_messages": list(ONNXRUNTIME_MESSAGES.items())}
    reference["controls"], reference["traces"] = controls_reference(directory)
    path = directory / "reference.json"
    path.write_text(json.dumps(reference, ensure_ascii=False))
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/js_reference.py DIR")
    print(write_reference(Path(sys.argv[1])))
