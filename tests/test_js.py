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


def test_readme_counts_the_samples_the_reference_holds():
    readme = (REPO / "README.md").read_text()
    per_model, large = (sum(count for _, _, count in cases) for cases in (SAMPLE_CASES, LARGE_SAMPLE_CASES))
    assert f"{per_model:,} seeded samples per model ({large:,} for `names-large`)" in readme


def test_package_version_is_mgpts():
    package = json.loads((JS / "package.json").read_text())
    pyproject = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert package["version"] == pyproject == __version__
    assert json.loads((JS / "package-lock.json").read_text())["version"] == package["version"]
