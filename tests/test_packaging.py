"""pip maps the repository's folders (train/, export/, runtime/, models/, serve/) onto the mgpt.* packages,
with their data files, for a regular and for an editable install alike."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"mgpt.train": "train", "mgpt.export": "export", "mgpt.runtime": "runtime", "mgpt.models": "models",
            "mgpt.serve": "serve"}
DATA = {"mgpt.train": ["names.txt"], "mgpt.models": ["names.npz", "names.onnx", "names-large.npz", "names-large.onnx"]}

# Locate the packages without importing them (the fresh environment has no numpy or onnxruntime).
PROBE = """
import importlib.util, json, pathlib
found = {}
for name in %r:
    spec = importlib.util.find_spec(name)
    found[name] = str(pathlib.Path(spec.origin).parent) if spec else None
print(json.dumps(found))
""" % (list(PACKAGES),)


@pytest.mark.parametrize("editable", [False, True], ids=["install", "editable"])
def test_pip_installs_each_folder_as_an_mgpt_package_with_its_data(tmp_path, editable):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    install = [python, "-m", "pip", "install", "--quiet", "--no-deps", *(["-e"] if editable else []), str(REPO)]
    done = subprocess.run(install, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]

    probe = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, cwd=tmp_path, check=True)
    found = json.loads(probe.stdout)
    for package, folder in PACKAGES.items():
        assert found[package] is not None, package
        where = Path(found[package])
        if editable:  # the package is the repository's folder itself
            assert where == REPO / folder
        else:  # a copy inside the environment, without the JavaScript runtime that lives in runtime/js
            assert venv in where.parents
            assert not (where / "js").exists(), "pip installed runtime/js"
        for name in DATA.get(package, []):
            assert (where / name).is_file(), (package, name)
    scripts = {p.name for p in (venv / "bin").iterdir()}
    assert {"mgpt-train", "mgpt-eval", "mgpt-export", "mgpt-generate", "mgpt-serve"} <= scripts
