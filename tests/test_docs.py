"""The docs cannot rot: their links resolve, docs/commands.md documents every option of every command
(and no option that is gone), and the code blocks marked runnable run and print what they show.

Pages: README.md, docs/*.md and runtime/js/README.md. Links: every relative link's file (or folder)
exists in the repository, and an anchor into a Markdown page is one of its headings' GitHub slugs;
http(s) addresses are not fetched. Options: the commands are pyproject.toml's [project.scripts]
(their click objects, introspected) and mgpt-page (serve.js's parseArgs table). Each has a section
`` ## `mgpt-x` `` in docs/commands.md whose option table lists every spelling of every option and
argument, with the default and range the command has; `## Every command` lists the options all click
commands share. A hidden option need not be documented, but may be. A command line in any page's
code (`mgpt-generate --seed 1`) may give only options the command has.

Runnable blocks: a line `<!-- run -->` directly before a fenced block marks it. Each runs in a fresh
temporary folder, removed afterwards, with this Python's bin folder first on PATH:
- ```python: run with this Python. If the block has a comment line `# prints:`, the comment lines
  after it (`# text`; a bare `#` for an empty line) are its expected standard output; else it must
  just exit with status 0.
- ```console: each line `$ COMMAND` runs in bash (a line ending in `\\` goes on to the next), the
  commands of a block one after another in the same folder; the lines after it, up to the next
  `$ `, are what it prints, standard output and standard error together as a terminal shows them.
  Its exit status must be 0, or, when the last line it shows begins with `Error:` (the commands'
  one-line errors), not 0.
- ```js: run by Node as an ES module, where `import ... from 'mgpt'` is runtime/js and
  `onnxruntime-node`/`onnxruntime-web` its installed packages, and `models/` is the repository's
  shipped models; `// prints:` and `// text` lines as in Python. Skipped without Node, as
  tests/test_js.py is (failed instead when MGPT_REQUIRE_JS is set).
In all three, an expected line `...` stands for any number of lines, and lines are compared without
trailing spaces.
"""

from __future__ import annotations

import functools
import json
import os
import pkgutil
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import pytest

import doc_pages as md
from test_js import node  # noqa: F401  (the fixture: Node, with runtime/js/node_modules installed)

REPO = Path(__file__).resolve().parents[1]
JS = REPO / "runtime" / "js"
COMMANDS = REPO / "docs" / "commands.md"
COMMON_SECTION = "Every command"  # commands.md's section for the options every click command has
README_LINES = 300


def pages() -> list[Path]:
    """The Markdown the project publishes: README.md, docs/*.md and the npm package's README."""
    found = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    return found + [page for page in [JS / "README.md"] if page.is_file()]


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


# ----------------------------------------------------------------------------- links

@pytest.mark.parametrize("page", pages(), ids=rel)
def test_every_relative_link_and_anchor_resolves(page):
    problems = md.page_link_problems(page, REPO)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_docs_index_links_every_page():
    """docs/README.md, the index, leaves no page of docs/ unlisted."""
    index = REPO / "docs" / "README.md"
    linked = {(index.parent / link.target.partition("#")[0]).resolve()
              for link in md.links(index.read_text(encoding="utf-8")) if not md.is_external(link.target)}
    unlisted = [rel(page) for page in sorted((REPO / "docs").glob("*.md")) if page.resolve() not in linked | {index}]
    assert not unlisted, f"{rel(index)} does not link {', '.join(unlisted)}: add a row for each"


@pytest.mark.parametrize("page", pages(), ids=rel)
def test_every_run_marker_comes_directly_before_a_block(page):
    lines = md.run_markers_without_block(page.read_text(encoding="utf-8"))
    assert not lines, f"{rel(page)}: {md.RUN_MARKER} on lines {lines} is not directly before a ``` fence"


def test_readme_is_a_short_front_door():
    lines = len((REPO / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines <= README_LINES, f"README.md has {lines} lines; keep it to {README_LINES} and move the rest into docs/"


# ----------------------------------------------------------------------------- docs/commands.md

def console_scripts() -> dict[str, str]:
    """pyproject.toml's [project.scripts]: command -> `module:attribute`."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    table = re.search(r"^\[project\.scripts\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    return dict(re.findall(r'^\s*"?([\w.-]+)"?\s*=\s*"([^"]+)"', table.group(1), re.M))


def click_params(target: str) -> list[md.Param]:
    """The options and arguments of the click command at `module:attribute`, help included."""
    command = pkgutil.resolve_name(target)
    assert isinstance(command, click.Command), f"{target} is not a click command"
    params = []
    for param in command.get_params(click.Context(command, **command.context_settings)):
        if isinstance(param, click.Argument):
            params.append(md.Param((param.human_readable_name.strip("[].").upper(),)))
            continue
        kind = param.type
        bounds = tuple(bound for bound in (getattr(kind, "min", None), getattr(kind, "max", None)) if bound is not None)
        default = str(param.default) if isinstance(param.default, os.PathLike) else param.default
        default = default if isinstance(default, (int, float, str)) and not param.is_flag else None
        params.append(md.Param(tuple(param.opts + param.secondary_opts), default, bounds,
                               tuple(getattr(kind, "choices", ())), required=not param.hidden))
    return params


def page_params() -> list[md.Param]:
    """mgpt-page's options, from the parseArgs table in runtime/js/serve.js."""
    source = (JS / "serve.js").read_text(encoding="utf-8")
    params = []
    for name, spec in re.findall(r"['\"]?([\w-]+)['\"]?\s*:\s*\{\s*(type:\s*'\w+'[^{}]*)\}", source):
        short = re.search(r"short:\s*'(\w)'", spec)
        default = re.search(r"default:\s*'([^']*)'", spec)
        value = default.group(1) if default else None
        value = int(value) if value is not None and value.isdigit() else value
        params.append(md.Param(((f"-{short.group(1)}",) if short else ()) + (f"--{name}",), value))
    assert params, "found no options in runtime/js/serve.js's parseArgs call"
    return params


COMMAND_PARAMS = {name: (lambda target=target: click_params(target)) for name, target in console_scripts().items()}
COMMAND_PARAMS["mgpt-page"] = page_params


@pytest.mark.parametrize("command", sorted(COMMAND_PARAMS))
def test_commands_page_documents_the_command_exactly(command):
    """Every option and argument in the command's table (all its spellings: `-n, --num-samples`,
    `--pack/--no-pack`), none twice, none it lacks, with its default and range."""
    common = COMMON_SECTION if command != "mgpt-page" else None
    problems = md.command_problems(COMMANDS.read_text(encoding="utf-8"), command, COMMAND_PARAMS[command](), common)
    assert not problems, f"{rel(COMMANDS)} on {command}:\n" + "\n".join(problems)


def test_commands_page_has_a_section_for_each_command_and_no_other():
    titles = md.sections(COMMANDS.read_text(encoding="utf-8"))
    documented = {match.group(1) for title in titles if (match := re.fullmatch(r"`([\w-]+)`", title.strip()))}
    assert documented == set(COMMAND_PARAMS), (f"sections without a command: {sorted(documented - set(COMMAND_PARAMS))}; "
                                               f"commands without a section: {sorted(set(COMMAND_PARAMS) - documented)}")


@pytest.mark.parametrize("page", pages(), ids=rel)
def test_command_lines_in_the_docs_give_options_the_command_has(page):
    """`mgpt-generate --seed 1 -n 5` in any page's code: every option given is one the command has."""
    names = {**{command: command for command in COMMAND_PARAMS}, "serve.js": "mgpt-page"}
    have = {command: {name for param in params() for name in param.names} for command, params in COMMAND_PARAMS.items()}
    wrong = [f"{rel(page)}:{line}: {command} has no option {option}"
             for line, command, options in md.command_lines(page.read_text(encoding="utf-8"), names)
             for option in options if option not in have[command]]
    assert not wrong, "\n".join(wrong)


def test_the_page_server_takes_the_options_parsed_from_it(node):  # noqa: F811
    """The options read from serve.js's source are the ones its --help names (so the parse is right)."""
    usage = subprocess.run([node, str(JS / "serve.js"), "--help"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 0, usage.stderr
    shown = set(re.findall(r"--[\w-]+", usage.stdout)) | {"--help", "-h"}
    assert {name for param in page_params() for name in param.names} == shown, usage.stdout


# ----------------------------------------------------------------------------- runnable blocks

LANGUAGES = {"python": "python", "py": "python", "console": "console", "js": "js", "javascript": "js", "mjs": "js"}


def runnable_blocks() -> list:
    return [pytest.param(page, block, id=f"{rel(page)}:{block.line}")
            for page in pages() for block in md.split_blocks(page.read_text(encoding="utf-8"))[1] if block.runnable]


def environment(folder: Path) -> dict[str, str]:
    """This Python's commands first on PATH; temporary files (onnxruntime-node's logs) in folder/tmp."""
    bin_dir = str(Path(sys.executable).parent)
    return dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", TMPDIR=str(folder / "tmp"))


BLOCK_TIMEOUT = 120  # seconds a block's command may take


def run_alone(command: list[str], timeout: float = BLOCK_TIMEOUT, **options) -> subprocess.CompletedProcess:
    """subprocess.run in a process group of its own, which is killed whole when the command ends or
    runs out of time: a block that starts a server in the background (`&`) fails, and leaves nothing."""
    with subprocess.Popen(command, start_new_session=True, text=True, **options) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            pytest.fail(f"{' '.join(command)} still running after {timeout} s (a process left in the "
                        "background?); killed", pytrace=False)
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def run_block(block: md.Block, node_path: str | None = None, timeout: float = BLOCK_TIMEOUT) -> None:
    """Runs one runnable block (see the module's docstring); fails with what it printed."""
    language = LANGUAGES.get(block.language)
    if not language:
        pytest.fail(f"a runnable block must be python, console or js, not {block.language or 'unmarked'}", pytrace=False)
    with tempfile.TemporaryDirectory(prefix="mgpt-doc-") as folder:
        scratch = Path(folder) / "work"
        scratch.mkdir()
        (Path(folder) / "tmp").mkdir()
        env = environment(Path(folder))
        if language == "console":
            steps = md.console_steps(block.lines)
            if not steps:
                pytest.fail("a runnable console block needs at least one `$ ` line", pytrace=False)
            for start, command, shown in steps:
                done = run_alone(["bash", "-c", command], timeout, cwd=scratch, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)
                context = f"line {block.line + 1 + start}: $ {command}"
                mismatch = md.output_mismatch(shown, done.stdout)
                if mismatch is not None:
                    pytest.fail(f"{context}\n{mismatch}", pytrace=False)
                errs = bool(shown) and shown[-1].startswith("Error:")
                if (done.returncode != 0) != errs:
                    pytest.fail(f"{context}\nexit status {done.returncode}, expected {'non-zero' if errs else '0'}:\n"
                                f"{done.stdout[-3000:]}", pytrace=False)
            return
        if language == "python":
            script, command, comment = scratch / "example.py", [sys.executable, "example.py"], "#"
        else:
            script, command, comment = scratch / "example.mjs", [node_path, "example.mjs"], "//"
            modules = scratch / "node_modules"
            modules.mkdir()
            (modules / "mgpt").symlink_to(JS, target_is_directory=True)
            for package in ("onnxruntime-node", "onnxruntime-web"):
                (modules / package).symlink_to(JS / "node_modules" / package, target_is_directory=True)
            (scratch / "models").symlink_to(REPO / "models", target_is_directory=True)
        script.write_text(block.code, encoding="utf-8")
        done = run_alone(command, timeout, cwd=scratch, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if done.returncode != 0:
            pytest.fail(f"exit status {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}", pytrace=False)
        expected = md.expected_output(block.lines, comment)
        mismatch = None if expected is None else md.output_mismatch(expected, done.stdout)
        if mismatch is not None:
            pytest.fail(f"{mismatch}\nstderr:\n{done.stderr[-3000:]}", pytrace=False)


@pytest.mark.parametrize("page, block", runnable_blocks())
def test_runnable_block(page, block, request):
    node_path = request.getfixturevalue("node") if LANGUAGES.get(block.language) == "js" else None
    run_block(block, node_path)


def blocks_of(languages: set[str]) -> list:
    return [pytest.param(block, id=f"{rel(page)}:{block.line}") for page in pages()
            for block in md.split_blocks(page.read_text(encoding="utf-8"))[1] if block.language in languages]


@pytest.mark.parametrize("block", blocks_of({"python", "py"}))
def test_every_python_block_parses_and_imports_what_mgpt_has(block):
    """The blocks not marked runnable rot too: each must still be Python, and its mgpt imports exist."""
    import importlib

    try:
        imports = md.python_imports(block.code)
    except SyntaxError as error:
        pytest.fail(f"not Python: {error}", pytrace=False)
    for module, name in imports:
        imported = importlib.import_module(module)
        if name is not None and not hasattr(imported, name):
            importlib.import_module(f"{module}.{name}")  # a submodule, or ModuleNotFoundError names it


@functools.cache
def mgpt_js_exports(node: str) -> list[str]:  # noqa: F811
    """The names runtime/js/src/index.js exports, as Node sees them."""
    listing = subprocess.run([node, "--input-type=module", "-e",
                              f"console.log(Object.keys(await import({json.dumps((JS / 'src' / 'index.js').as_uri())})).join(' '))"],
                             capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    return listing.stdout.split()


@pytest.mark.parametrize("block", blocks_of({"js", "javascript", "mjs", "html"}))
def test_every_js_block_parses_and_imports_what_mgpt_exports(block, node, tmp_path):  # noqa: F811
    """JavaScript blocks, and an HTML block's module scripts: Node's syntax check, and the names they
    import from mgpt (by name or by its src/index.js) exist."""
    for number, code in enumerate([block.code] if block.language != "html" else md.module_scripts(block.code)):
        script = tmp_path / f"block{number}.mjs"
        script.write_text(code, encoding="utf-8")
        checked = subprocess.run([node, "--check", str(script)], capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, f"not JavaScript:\n{checked.stderr[-2000:]}"
        missing = set(md.js_imports(code)) - set(mgpt_js_exports(node))
        assert not missing, f"imports {sorted(missing)}, which mgpt (runtime/js/src/index.js) does not export"


# ----------------------------------------------------------------------------- the checks can fail

def test_slugs_are_githubs():
    assert md.slug("Train (`mgpt-train`)") == "train-mgpt-train"
    assert md.slug("`mgpt-serve`: mgpt models over HTTP") == "mgpt-serve-mgpt-models-over-http"
    assert md.slug("Labeled data: `mgpt-train --labeled`") == "labeled-data-mgpt-train---labeled"
    assert md.slug("Metrics (`GET /metrics`)") == "metrics-get-metrics"
    assert md.slug("A [linked](x.md) *word* & snake_case") == "a-linked-word--snake_case"
    assert md.slug("Größe – Ünïcode") == "größe--ünïcode"


def test_duplicate_headings_are_numbered_and_code_is_not_a_heading():
    text = "# Top\n## Usage\n```python\n# Usage\n```\n## Usage\n### Usage\n<a id=\"here\"></a>\n"
    assert md.anchors(text) == ["top", "usage", "usage-1", "usage-2", "here"]


def synthetic_tree(root: Path) -> Path:
    (root / "docs").mkdir()
    (root / "src.py").write_text("x = 1\n")
    (root / "docs" / "other.md").write_text("# Other\n## Part two\n## Part two\n")
    page = root / "docs" / "page.md"
    page.write_text("\n".join([
        "# Page",                                                     # 1
        "[ok](other.md#part-two-1) [ok](#page) [ok](../src.py#L1)",   # 2
        "[gone](missing.md) and [bad anchor](other.md#part-three)",   # 3
        "`[not a link](nowhere.md)` [out](../../etc/passwd)",         # 4
        "[split across",                                              # 5
        "lines](#nothing-here) [web](https://example.com/x.md#y)",    # 6
        "```",
        "[in code](nowhere.md)",
        "```",
        "[ref]: ./other.md#part-two-2",                               # 10
        '<a href="other.md#other">ok</a> <img src="logo.png">',        # 11
    ]) + "\n")
    return page


def test_broken_links_and_anchors_are_found_with_their_lines(tmp_path):
    problems = md.page_link_problems(synthetic_tree(tmp_path), tmp_path)
    assert [problem.split(":")[1] for problem in problems] == ["3", "3", "4", "6", "10", "11"], problems
    assert "missing.md does not exist" in problems[0]
    assert "no heading with anchor #part-three in other.md; similar: part-two, part-two-1" in problems[1]
    assert "outside the repository" in problems[2]
    assert "#nothing-here" in problems[3] and "#part-two-2" in problems[4] and "logo.png does not exist" in problems[5]


def test_misplaced_run_markers_are_found():
    text = f"{md.RUN_MARKER}\n```python\nprint(1)\n```\n\n{md.RUN_MARKER}\n\n```python\nprint(2)\n```\n"
    assert md.run_markers_without_block(text) == [6]
    blocks = md.split_blocks(text)[1]
    assert [(block.line, block.runnable, block.code) for block in blocks] == [(2, True, "print(1)\n"),
                                                                             (8, False, "print(2)\n")]


SYNTHETIC_COMMANDS = """# Commands

## Every command

| option | default | values | meaning |
|---|---|---|---|
| `-h, --help` | | | help |

## `tool`

| option | default | values | meaning |
|---|---|---|---|
| `FILE` | | | the input |
| `-n, --count N` | 20 | integer ≥ 0 | how many |
| `--mode M` | `fast` | `fast`, `slow` | how |
| `--ratio R` | 0.5 | 0 < R ≤ 1 | a share; the range's `--ratio` is not a new row |
"""
TOOL = [md.Param(("FILE",)), md.Param(("-n", "--count"), 20, (0,)), md.Param(("--mode",), "fast", (), ("fast", "slow")),
        md.Param(("--ratio",), 0.5, (0, 1)), md.Param(("-h", "--help"))]


def test_a_documented_command_has_no_problems():
    assert md.command_problems(SYNTHETIC_COMMANDS, "tool", TOOL, COMMON_SECTION) == []


@pytest.mark.parametrize("change, params, found", [
    (None, TOOL + [md.Param(("--new",))], "--new is in no row"),
    (None, TOOL + [md.Param(("--secret",), required=False)], None),
    (None, [p for p in TOOL if p.names != ("--mode",)], "line 15: --mode is documented but tool has no such option"),
    (("-n, --count N", "--count N"), TOOL, "-n is in no row"),
    (("| 20 |", "| 10 |"), TOOL, "line 14: --count's default is 20, the row says '10'"),
    (("`fast`, `slow`", "`fast`"), TOOL, "--mode takes `slow`, not in its values cell"),
    (("0 < R ≤ 1", "R > 0"), TOOL, "--ratio takes values bounded by 1"),
    (("| the input |", "| the input |\n| `FILE` | | | again |"), TOOL, "FILE is documented twice"),
    (("## `tool`", "## tool"), TOOL, "no section for tool"),
    (("`-h, --help`", "`-h, --help`, `--verbose`"), TOOL, "--verbose is documented but tool has no such option"),
])
def test_command_problems_are_found(change, params, found):
    text = SYNTHETIC_COMMANDS.replace(*change) if change else SYNTHETIC_COMMANDS
    problems = md.command_problems(text, "tool", params, COMMON_SECTION)
    if found is None:
        assert problems == []
    else:
        assert any(found in problem for problem in problems), problems


def test_command_lines_are_read_from_code_only():
    text = "\n".join(["Run `tool --count 3 -x && other --b` or tool --in-prose.",      # 1
                      "```console", "$ tool --mode=fast 'a|b' --ratio 1 | grep x --y",  # 3
                      "$ other [--a N] --b # --not-an-option", "```"])
    assert md.command_lines(text, {"tool": "tool", "other": "other"}) == [
        (1, "tool", ["--count", "-x"]), (1, "other", ["--b"]), (3, "tool", ["--mode", "--ratio"]),
        (4, "other", ["--a", "--b"])]


def test_block_imports_are_read():
    assert md.python_imports("import mgpt.runtime\nfrom mgpt.train import a, b as c\nimport numpy\n") == [
        ("mgpt.runtime", None), ("mgpt.train", "a"), ("mgpt.train", "b")]
    with pytest.raises(SyntaxError):
        md.python_imports("era.generate(5, seed=1, labels=[F, 1950s])")
    assert md.js_imports("import * as ort from 'x';\nimport { Generator, ModelError as E } from 'mgpt';\n"
                         "import { Vocab } from './mgpt/src/index.js';") == ["Generator", "ModelError", "Vocab"]
    page = '<p>\n<script type="module">\n  import { A } from "mgpt";\n</script>\n<script src="x.js"></script>'
    assert md.module_scripts(page) == ['\n  import { A } from "mgpt";\n']


def test_output_matching():
    assert md.output_mismatch(["a", "...", "d"], "a\nb\nc\nd\n") is None
    assert md.output_mismatch(["a", "...", "d"], "a\nd") is None
    assert md.output_mismatch(["a", "..."], "a  \n\n") is None
    assert md.output_mismatch(["a", "d"], "a\nb\nd") == "expected:\na\nd\ngot:\na\nb\nd"
    assert md.output_mismatch(["a"], "") is not None and md.output_mismatch([], "x") is not None


def test_console_and_python_expectations_are_read():
    assert md.console_steps(["$ echo a \\", "  b", "a b", "$ true", "$ echo x", "x", "..."]) == [
        (0, "echo a \\\n  b", ["a b"]), (3, "true", []), (4, "echo x", ["x", "..."])]
    code = ["print(1)", "# prints:", "# 1", "#", "#  indented", "x = 2  # not expected"]
    assert md.expected_output(code, "#") == ["1", "", " indented"]
    assert md.expected_output(["print(1)"], "#") is None


@pytest.mark.parametrize("language, code, failure", [
    ("console", ["$ echo hello", "hello"], None),
    ("console", ["$ echo hello", "goodbye"], "expected:\ngoodbye\ngot:\nhello"),
    ("console", ["$ echo out; echo 'Error: bad' >&2; exit 2", "out", "Error: bad"], None),
    ("console", ["$ false"], "exit status 1, expected 0"),
    ("console", ["$ echo 'Error: shown but exit 0'", "Error: shown but exit 0"], "expected non-zero"),
    ("console", ["$ touch f", "$ ls", "f"], None),  # one folder for the block's commands
    ("console", ["$ ls"], None),                     # and an empty one to start with
    ("python", ["print(6 * 7)", "# prints:", "# 42"], None),
    ("python", ["print(6 * 7)", "# prints:", "# 41"], "expected:\n41\ngot:\n42"),
    ("python", ["raise SystemExit(3)"], "exit status 3"),
    ("bash", ["echo"], "must be python, console or js"),
])
def test_blocks_run_and_fail_as_they_should(language, code, failure):
    block = md.Block(language, 1, tuple(code), True)
    if failure is None:
        run_block(block)
    else:
        with pytest.raises(pytest.fail.Exception, match=re.escape(failure)):
            run_block(block)


def process_state(pid: int) -> str | None:
    """A process's state letter from /proc (`Z`: a zombie, dead), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from Linux's /proc")
def test_a_block_that_leaves_a_process_running_fails_and_the_process_is_killed(tmp_path):
    pid_file = tmp_path / "pid"
    block = md.Block("console", 1, (f"$ sleep 60 & echo $! > {pid_file}",), True)
    with pytest.raises(pytest.fail.Exception, match="still running after 3 s"):
        run_block(block, timeout=3)  # time enough for bash to start on a busy machine
    pid = int(pid_file.read_text())
    for _ in range(100):  # the kill is asynchronous: give the kernel a moment
        if process_state(pid) in (None, "Z"):
            break
        time.sleep(0.02)
    else:
        pytest.fail(f"the background sleep ({pid}) is still alive, state {process_state(pid)}")


def test_a_js_block_imports_mgpt_and_its_engine(node):  # noqa: F811
    code = ["import * as ort from 'onnxruntime-node';", "import { Generator } from 'mgpt';",
            "const gen = await Generator.load('models/names.onnx', { ort });",
            "console.log((await gen.generate({ numSamples: 3, seed: 1 })).join(' '));",
            "// prints:", "// luken kamina azaria"]
    run_block(md.Block("js", 1, tuple(code), True), node)
    with pytest.raises(pytest.fail.Exception, match="expected:\nluken\ngot:"):
        run_block(md.Block("js", 1, tuple(code[:-1] + ["// luken"]), True), node)
