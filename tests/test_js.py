"""The JavaScript runtime (runtime/js), driven from pytest so that one command runs every test.

Python writes the reference (tests/js_reference.py: its samples, uniforms, draws, logits, scores and
bad model files) into a temporary folder, and Node's test runner checks the JavaScript side against
it. The npm packages the tests need are installed into runtime/js/node_modules on first use
(``npm ci --ignore-scripts``: onnxruntime-node's install script would download binaries it already
ships). Without Node.js (20 or newer) or npm the tests are skipped, saying how to install them;
with MGPT_REQUIRE_JS set (CI sets it) they fail instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from js_reference import LARGE_SAMPLE_CASES, SAMPLE_CASES, write_reference
from mgpt.runtime import Generator, ModelError, __version__

REPO = Path(__file__).resolve().parents[1]
JS = REPO / "runtime" / "js"
NODE_TESTS = ["sampling", "protobuf", "generator", "engines", "constraints", "types", "serve"]
MESSAGE_LIMIT = 1000  # the longest a ModelError's message may be, beside the file's name (as in generator.test.js)


def unavailable(reason: str):
    if os.environ.get("MGPT_REQUIRE_JS"):
        pytest.fail(f"{reason} (MGPT_REQUIRE_JS is set, so this is a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        unavailable("Node.js and npm are not installed: install Node.js 20 or newer with npm (nodejs.org, or "
                    "your distribution's nodejs and npm packages) to run the JavaScript runtime's tests")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    if int(re.match(r"v(\d+)", version).group(1)) < 20:
        unavailable(f"Node.js {version} is too old for the JavaScript runtime's tests: install Node.js 20 or newer")
    lock = (JS / "package-lock.json").read_bytes()
    stamp = JS / "node_modules" / ".mgpt-lock-sha256"  # which lockfile node_modules was installed from
    digest = hashlib.sha256(lock).hexdigest()
    if not stamp.is_file() or stamp.read_text() != digest:
        done = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=JS,
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
            unavailable(f"the JavaScript runtime's npm packages could not be installed (npm ci --ignore-scripts "
                        f"in {JS} said: {last[0]}); run it there by hand with access to the npm registry")
        stamp.write_text(digest)
    return node


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("js-reference")
    write_reference(directory)
    return directory


def test_python_refuses_the_reference_bad_models(reference):
    """The bad model files that the JavaScript tests must refuse, refused by Python too, with the same
    fragment in a single short line (however large the sizes or names that the file holds)."""
    bad = json.loads((reference / "reference.json").read_text())["bad_models"]
    for file, fragment in bad.items():
        with pytest.raises(ModelError) as refused:
            Generator(reference / file)
        message = str(refused.value)
        assert fragment in message and "\n" not in message, (file, message)
        assert len(message) - len(str(reference / file)) < MESSAGE_LIMIT, (file, len(message))


def run_node_tests(node: str, files: list[str], reference: Path, timeout: int = 600) -> None:
    # a temporary directory of the run's own: onnxruntime-node 1.30 leaves an empty
    # mat-debug-<pid>.log in TMPDIR for every process that opens a session (its telemetry SDK's
    # log), and Chromium its profile; so nothing stays behind in the system's /tmp
    with tempfile.TemporaryDirectory(prefix="mgpt-js-") as scratch:
        env = dict(os.environ, MGPT_JS_REFERENCE=str(reference), TMPDIR=scratch)
        done = subprocess.run([node, "--test", "--test-reporter=spec", *files], cwd=JS, env=env,
                              capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"node --test {' '.join(files)} failed:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    assert re.search(r"^ℹ fail 0$", done.stdout, re.M) and not re.search(r"^ℹ pass 0$", done.stdout, re.M), done.stdout


@pytest.mark.parametrize("name", NODE_TESTS)
def test_node(node, reference, name):
    run_node_tests(node, [f"test/{name}.test.js"], reference)


@pytest.fixture(scope="session")
def chromium() -> str:
    path = os.environ.get("MGPT_CHROMIUM") or shutil.which("chromium")
    if not path:
        unavailable("Chromium is not installed: apt-get install chromium (Debian's package; .ci/run does this), "
                    "or set MGPT_CHROMIUM to a Chromium binary, to run the page's test in a browser")
    return path


def test_page_in_chromium(node, chromium, reference, monkeypatch):
    monkeypatch.setenv("MGPT_CHROMIUM", chromium)
    run_node_tests(node, ["test/page.test.js"], reference)


# `npm test` on its own (runtime/js/test/run.js), as a JavaScript developer runs it: the whole suite takes
# ~50 s (measured: `time npm test` in runtime/js, 49 s on this 2-core machine), which test_node above
# already runs file by file, so these run two quick files: sampling.test.js needs Python's reference,
# serve.test.js does not.
NEEDS_REFERENCE, STANDS_ALONE = "test/sampling.test.js", "test/serve.test.js"


def npm_test(files: list[str], path: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """`npm test -- FILES` in runtime/js with PATH as given, none of the MGPT_ variables but `env`, and a TMPDIR
    that must be left empty; runtime/js's files as git sees them unchanged."""
    scratch = tmp_path / "tmp"
    scratch.mkdir(parents=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MGPT_") and k != "VIRTUAL_ENV"}
    status = ["git", "status", "--porcelain", "--ignored=no", "--", str(JS)]
    before = subprocess.run(status, cwd=REPO, capture_output=True, text=True).stdout
    done = subprocess.run([shutil.which("npm"), "test", "--", "--test-reporter=spec", *files], cwd=JS,
                          env=dict(clean, PATH=path, TMPDIR=str(scratch), **env), capture_output=True, text=True,
                          timeout=600)
    assert subprocess.run(status, cwd=REPO, capture_output=True, text=True).stdout == before
    assert list(scratch.iterdir()) == []
    return done


def count(name: str, spec: str) -> int:
    return int(re.search(rf"^ℹ {name} (\d+)$", spec, re.M).group(1))


def test_npm_test_writes_pythons_reference_itself(node, tmp_path):
    """Without MGPT_JS_REFERENCE, with a Python that has mgpt on PATH, `npm test` writes the reference and
    runs the tests that need it; none is skipped."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    done = npm_test([NEEDS_REFERENCE, STANDS_ALONE], path, tmp_path, MGPT_REQUIRE_JS="1")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert re.search(r"^reference: python3 .*js_reference\.py \(mgpt\.runtime from ", done.stdout, re.M), done.stdout
    assert "skipped" not in done.stdout.replace("ℹ skipped 0", "")
    assert count("fail", done.stdout) == count("skipped", done.stdout) == 0
    assert count("pass", done.stdout) >= 9  # sampling.test.js's 4 tests and serve.test.js's 5


def test_npm_test_without_python_skips_what_needs_it(node, tmp_path):
    """With no Python that has mgpt, the tests that need Python's reference are skipped with one line saying how
    to run them, and the others run; with MGPT_REQUIRE_JS set, that is a failure, in one line."""
    if (REPO / ".venv").exists():
        pytest.skip("the repository's .venv is there, and npm test would use its Python")
    bin = tmp_path / "bin"  # node, npm and the shell npm runs scripts in: no Python
    bin.mkdir()
    for name in ("node", "npm", "sh"):
        (bin / name).symlink_to(shutil.which(name))
    nowhere = str(tmp_path / "no-such-python")
    done = npm_test([NEEDS_REFERENCE, STANDS_ALONE], str(bin), tmp_path, MGPT_PYTHON=nowhere)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    skipped = [line for line in done.stdout.splitlines() if line.startswith("skipped")]
    assert skipped == [f"skipped {NEEDS_REFERENCE}: no Python with mgpt to write the reference (tried {nowhere} "
                       "(not found), python3 (not found), python (not found)); pip install -e ../.. (in a virtualenv) "
                       "or set MGPT_PYTHON to a Python that has mgpt, or run them through pytest "
                       "(python -m pytest tests/test_js.py in the repository)"]
    assert count("fail", done.stdout) == 0 and count("pass", done.stdout) >= 5  # serve.test.js ran

    required = npm_test([NEEDS_REFERENCE], str(bin), tmp_path / "required", MGPT_PYTHON=nowhere, MGPT_REQUIRE_JS="1")
    assert required.returncode == 1
    assert required.stderr.strip().splitlines() == [f"Error: {skipped[0]} (MGPT_REQUIRE_JS is set, so this is a failure)"]


def test_the_docs_count_the_samples_the_reference_holds():
    page = (REPO / "docs" / "javascript.md").read_text()
    per_model, large = (sum(count for _, _, count in cases) for cases in (SAMPLE_CASES, LARGE_SAMPLE_CASES))
    assert f"{per_model:,} seeded samples per model ({large:,} for `names-large`)" in page


def test_package_version_is_mgpts():
    package = json.loads((JS / "package.json").read_text())
    pyproject = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert package["version"] == pyproject == __version__
    assert json.loads((JS / "package-lock.json").read_text())["version"] == package["version"]


def test_npm_package_ships_its_readme_and_not_its_tests(node):
    """What `npm install` copies: the runtime, its types, the page and its server, and the README (its front
    door, at most 150 lines, stating the package's size within 15% of what npm pack measures now)."""
    done = subprocess.run([shutil.which("npm"), "pack", "--dry-run", "--json"], cwd=JS, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    pack = json.loads(done.stdout)[0]
    files = {entry["path"] for entry in pack["files"]}
    assert {"README.md", "package.json", "index.d.ts", "serve.js", "src/index.js", "web/index.html"} <= files
    assert not [f for f in files if f.split("/")[0] in ("test", "bench", "node_modules")], sorted(files)
    readme = (JS / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    stated = re.search(r"this package is ([\d.]+) kB unpacked \(([\d.]+) kB packed", readme)
    assert stated, "runtime/js/README.md no longer states the package's size"
    for figure, measured in zip(stated.groups(), (pack["unpackedSize"], pack["size"])):
        assert abs(float(figure) * 1000 / measured - 1) <= 0.15, (figure, measured)
