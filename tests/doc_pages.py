"""Reading the project's Markdown pages for tests/test_docs.py: headings and their anchors, links,
the option tables of docs/commands.md, the command lines the pages show, and their code blocks
(the runnable ones' expected output, the others' imports).

Only as much Markdown as the pages use: ATX headings (`## Title`), fenced code blocks (``` or ~~~,
at any indentation), inline links and images `[text](target "title")`, reference definitions
`[label]: target`, HTML `<a href>`, `<img src>` and `<a id>`, and pipe tables. Everything inside
fenced blocks and inline code is text, never a heading or a link.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^`\s]*)[^`]*$")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)")
INLINE_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*(<[^>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)"
                         r"(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*(<[^>\n]*>|\S+)", re.M)
HTML_LINK = re.compile(r"<(?:a|img)\s[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']+)[\"']", re.I)
HTML_ANCHOR = re.compile(r"<a\s[^>]*?\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.I)
RUN_MARKER = "<!-- run -->"


@dataclass(frozen=True)
class Block:
    """A fenced code block: its info string's first word, the line of its opening fence (1-based),
    its lines (indentation of the fence removed), and whether the line before it is RUN_MARKER."""
    language: str
    line: int
    lines: tuple[str, ...]
    runnable: bool

    @property
    def code(self) -> str:
        return "".join(f"{line}\n" for line in self.lines)


@dataclass(frozen=True)
class Link:
    line: int
    target: str


def split_blocks(text: str) -> tuple[list[str], list[Block]]:
    """The page's lines with every fenced block's lines (fences included) blanked, so that line
    numbers stay those of the file, and the blocks themselves. An unclosed fence runs to the end."""
    lines = text.splitlines()
    prose = list(lines)
    blocks: list[Block] = []
    opened = None  # (index of the opening fence, indentation, fence, language)
    for index, line in enumerate(lines):
        fence = FENCE.match(line)
        if opened is None:
            if fence:
                opened = (index, len(fence.group(1)), fence.group(2), fence.group(3).lower())
                prose[index] = ""
            continue
        prose[index] = ""
        start, indent, marks, language = opened
        if fence and fence.group(2)[0] == marks[0] and len(fence.group(2)) >= len(marks) and not fence.group(3):
            blocks.append(_block(lines, start, index, indent, language))
            opened = None
    if opened is not None:
        start, indent, _, language = opened
        blocks.append(_block(lines, start, len(lines), indent, language))
    return prose, blocks


def _block(lines: list[str], start: int, end: int, indent: int, language: str) -> Block:
    body = tuple(line[indent:] if not line[:indent].strip() else line.lstrip() for line in lines[start + 1:end])
    runnable = start > 0 and lines[start - 1].strip() == RUN_MARKER
    return Block(language, start + 1, body, runnable)


def run_markers_without_block(text: str) -> list[int]:
    """Lines of RUN_MARKER (outside code) that are not directly followed by a fenced block."""
    prose, _ = split_blocks(text)
    lines = text.splitlines()
    return [number for number, line in enumerate(prose, 1)
            if line.strip() == RUN_MARKER and not (number < len(lines) and FENCE.match(lines[number]))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: links and images reduced to their text, HTML tags and
    every character but letters, digits, `_`, `-` and spaces removed, lowercased, spaces to `-`."""
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]*>", "", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> list[str]:
    """Every anchor a page has: its headings' slugs, the second and later of equal slugs numbered
    `-1`, `-2`, ... as GitHub does, then the ids of its HTML anchors."""
    prose, _ = split_blocks(text)
    seen: dict[str, int] = {}
    found = []
    for line in prose:
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.append(base if count == 0 else f"{base}-{count}")
    found.extend(match.group(1) for line in prose for match in HTML_ANCHOR.finditer(line))
    return found


def headings(text: str) -> list[tuple[int, int, str]]:
    """(line, level, text) of every heading outside code."""
    prose, _ = split_blocks(text)
    return [(number, len(m.group(1)), m.group(2)) for number, line in enumerate(prose, 1)
            if (m := HEADING.match(line))]


def links(text: str) -> list[Link]:
    """The targets of the page's links, images, reference definitions and HTML `<a href>` and
    `<img src>`, each with its line. Inline code is blanked first (character for character, so
    positions hold); a link's text may span lines."""
    prose, _ = split_blocks(text)
    body = "\n".join(prose)
    body = CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", "x", m.group()), body)
    found = []
    for pattern, group in ((INLINE_LINK, 2), (REFERENCE_DEFINITION, 1), (HTML_LINK, 1)):
        for match in pattern.finditer(body):
            target = match.group(group).strip("<>")
            found.append(Link(body.count("\n", 0, match.start(group)) + 1, target))
    return sorted(found, key=lambda link: link.line)


def is_external(target: str) -> bool:
    """An address with a scheme (http:, https:, mailto:, ...) or a protocol-relative one."""
    return target.startswith("//") or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) is not None


def link_problem(page: Path, target: str, root: Path) -> str | None:
    """What is wrong with a relative link from `page`, or None: its file (or folder) must exist inside
    `root` (a leading `/` is the root), and an anchor into a Markdown page must be one of its
    anchors. Anchors into other files (`#L10` of a source file) are not checked."""
    from urllib.parse import unquote

    path_part, _, anchor = target.partition("#")
    path_part = unquote(path_part.split("?")[0])
    if path_part:
        base = root if path_part.startswith("/") else page.parent
        resolved = (base / path_part.lstrip("/")).resolve()
        try:
            resolved.relative_to(root.resolve())
        except ValueError:
            return f"points outside the repository ({resolved})"
        if not resolved.exists():
            return f"{path_part} does not exist"
    else:
        resolved = page.resolve()
    if anchor and resolved.is_file() and resolved.suffix.lower() == ".md":
        wanted = unquote(anchor)
        have = anchors(resolved.read_text(encoding="utf-8"))
        if wanted not in have:
            near = [a for a in have if wanted.split("-")[0] in a][:5]
            hint = f"; similar: {', '.join(near)}" if near else ""
            return f"no heading with anchor #{wanted} in {resolved.name}{hint}"
    return None


def page_link_problems(page: Path, root: Path) -> list[str]:
    """Every broken relative link of `page`, as `page:line: (target) what is wrong`. Addresses with
    a scheme (http:, https:, mailto:) are not fetched."""
    text = page.read_text(encoding="utf-8")
    problems = []
    for link in links(text):
        if is_external(link.target):
            continue
        problem = link_problem(page, link.target, root)
        if problem:
            problems.append(f"{page.relative_to(root)}:{link.line}: ({link.target}) {problem}")
    return problems


# ----------------------------------------------------------------------------- docs/commands.md

def sections(text: str, level: int = 2) -> dict[str, tuple[int, str]]:
    """The page cut at its headings of `level`: heading text -> (its line, its body up to the next
    heading of that level or above)."""
    lines = text.splitlines()
    cuts = headings(text)
    found = {}
    for i, (number, lvl, title) in enumerate(cuts):
        if lvl == level:
            end = next((n - 1 for n, deeper, _ in cuts[i + 1:] if deeper <= level), len(lines))
            found[title] = (number, "\n".join(lines[number:end]))
    return found


OPTION = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")
NUMBER = re.compile(r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass(frozen=True, eq=False)  # rows are told apart by identity
class Row:
    """A row of an option table: its line in the page, the option names (`--x`, `-x`) and upper-case
    argument names (`MODEL`) in its first cell's code spans, and its cells by their header."""
    line: int
    names: tuple[str, ...]
    cells: dict


def option_rows(text: str, first_line: int = 1) -> list[Row]:
    """The rows of the option tables (tables whose first header is `option`) in `text`, whose first
    line is the page's line `first_line`. `--a/--no-a` names both; `\\|` is a `|` within a cell."""
    prose, _ = split_blocks(text)
    rows, header = [], None
    for number, line in enumerate(prose, first_line):
        stripped = line.strip()
        if not stripped.startswith("|"):
            header = None
            continue
        cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", stripped.strip("|"))]
        if header is None:
            header = [cell.lower() for cell in cells] if cells[0].lower() == "option" else []
            continue
        if not header or set(stripped) <= set("|-: "):
            continue
        spans = re.findall(r"`([^`]*)`", cells[0])
        names = [name for span in spans for name in OPTION.findall(span)]
        names += [span for span in spans if re.fullmatch(r"[A-Z][A-Z0-9_]*", span)]
        rows.append(Row(number, tuple(names), dict(zip(header, cells))))
    return rows


def numbers(text: str) -> set[float]:
    """The unsigned numbers written in `text` (`1,048,576`, `0.03`, `1e-9`)."""
    return {float(match.replace(",", "")) for match in NUMBER.findall(text)}


@dataclass(frozen=True)
class Param:
    """A command's option or argument as the docs must show it: all its names; the default its row
    must show (a number or text; None: not checked); the numbers its values cell must show (a
    range's ends); its choices; and whether it must be documented (False: a hidden option)."""
    names: tuple[str, ...]
    default: object = None
    bounds: tuple = ()
    choices: tuple = ()
    required: bool = True


def command_section(text: str, command: str) -> tuple[int, str] | None:
    """The level-2 section whose heading is the command's name in code (`` ## `mgpt-train` ``)."""
    for title, found in sections(text).items():
        if title.strip() == f"`{command}`":
            return found
    return None


def command_problems(text: str, command: str, params: list[Param], common: str | None = None) -> list[str]:
    """What the commands page `text` gets wrong about `command`: an option or argument missing from
    its section's table (or from the `common` section's, which documents options every command
    has), one documented twice, one documented that the command lacks, a default or range that is
    not the command's."""
    found = command_section(text, command)
    if found is None:
        return [f"no section for {command}: add a heading ## `{command}` with its option table"]
    line, body = found
    rows = option_rows(body, line + 1)
    if common is not None and common in sections(text):
        common_line, common_body = sections(text)[common]
        rows += option_rows(common_body, common_line + 1)
    problems, where = [], {}
    for row in rows:
        for name in row.names:
            if name in where:
                problems.append(f"line {row.line}: {name} is documented twice (also line {where[name].line}); "
                                "keep one row")
            where.setdefault(name, row)
    known = {name for param in params for name in param.names}
    for name, row in where.items():
        if name not in known:
            problems.append(f"line {row.line}: {name} is documented but {command} has no such option or argument "
                            f"(it has {', '.join(sorted(known))})")
    for param in params:
        missing = [name for name in param.names if name not in where]
        if missing and param.required:
            problems.append(f"{command}'s {'/'.join(param.names)}: {', '.join(missing)} is in no row of the option "
                            f"table of section `{command}` (line {line}); add it")
        rows_of = {where[name] for name in param.names if name in where}
        for row in rows_of:
            problems += _row_problems(row, param)
    return problems


def _row_problems(row: Row, param: Param) -> list[str]:
    problems = []
    default, values = row.cells.get("default", ""), row.cells.get("values", "")
    if isinstance(param.default, (int, float)) and not isinstance(param.default, bool):
        if float(param.default) not in numbers(default):
            problems.append(f"line {row.line}: {param.names[-1]}'s default is {param.default}, the row says {default!r}")
    elif isinstance(param.default, str) and param.default and param.default not in default:
        problems.append(f"line {row.line}: {param.names[-1]}'s default is {param.default!r}, the row says {default!r}")
    for bound in param.bounds:
        if float(bound) not in numbers(values):
            problems.append(f"line {row.line}: {param.names[-1]} takes values bounded by {bound}, "
                            f"which its values cell {values!r} does not show")
    for choice in param.choices:
        if f"`{choice}`" not in values:
            problems.append(f"line {row.line}: {param.names[-1]} takes `{choice}`, not in its values cell {values!r}")
    return problems


# ----------------------------------------------------------------------------- runnable blocks

def expected_output(lines: list[str] | tuple[str, ...], comment: str) -> list[str] | None:
    """The output a block promises: the comment lines after a line `<comment> prints:`, each without
    its `<comment> ` (a bare `<comment>` is an empty line); None if the block has no such line."""
    for index, line in enumerate(lines):
        if line.strip() == f"{comment} prints:":
            expected = []
            for after in lines[index + 1:]:
                after = after.strip()
                if after != comment and not after.startswith(f"{comment} "):
                    break
                expected.append(after[len(comment) + 1:])
            return expected
    return None


def console_steps(lines: list[str] | tuple[str, ...]) -> list[tuple[int, str, list[str]]]:
    """A console block's commands: (index of the `$ ` line in the block, the command, the lines shown
    after it up to the next `$ `). A command whose line ends in a backslash goes on to the next."""
    steps: list[tuple[int, str, list[str]]] = []
    continuing = False
    for index, line in enumerate(lines):
        if continuing:
            start, command, shown = steps[-1]
            steps[-1] = (start, f"{command}\n{line}", shown)
        elif line.startswith("$ "):
            steps.append((index, line[2:], []))
        elif steps:
            steps[-1][2].append(line)
        else:
            continue
        continuing = line.endswith("\\")
    return steps


def lines_match(expected: list[str], actual: list[str]) -> bool:
    """Whether `actual` is `expected` line for line, where an expected line `...` stands for any
    number of lines (none included)."""
    def closure(states: set[int]) -> set[int]:  # a `...` may also match nothing
        states = set(states)
        for i in sorted(states):
            while i < len(expected) and expected[i] == "...":
                i += 1
                states.add(i)
        return states

    states = {0}
    for line in actual:
        states = {i + (expected[i] != "...") for i in closure(states)
                  if i < len(expected) and expected[i] in ("...", line)}
        if not states:
            return False
    return len(expected) in closure(states)


def output_mismatch(expected: list[str], actual: str) -> str | None:
    """None if `actual` (trailing spaces of each line and trailing blank lines left out) is `expected`
    (see lines_match); else the two, for the failure's message."""
    want = [line.rstrip() for line in expected]
    while want and not want[-1]:
        want.pop()
    got = [line.rstrip() for line in actual.rstrip().splitlines()]
    if lines_match(want, got):
        return None
    shown = got[:40] + (["[... more lines]"] if len(got) > 40 else [])
    return "expected:\n" + "\n".join(want) + "\ngot:\n" + "\n".join(shown)


# ----------------------------------------------------------------------------- command lines in the docs

SHELL_BREAK = re.compile(r"&&|\|\||;|\s\|\s|\s#|\s&(?:\s|$)|`")


def command_lines(text: str, commands: dict[str, str]) -> list[tuple[int, str, list[str]]]:
    """The command lines a page shows, in inline code and in code blocks: (line, command, the option
    names given to it). `commands` maps what names a command on the page (`mgpt-train`, `serve.js`)
    to the command. A line is read up to a shell separator (`&&`, `;`, `|`, `#`, `&`)."""
    prose, blocks = split_blocks(text)
    chunks = [(number, span) for number, line in enumerate(prose, 1) for span in re.findall(r"`([^`]+)`", line)]
    chunks += [(block.line + i, line) for block in blocks for i, line in enumerate(block.lines, 1)]
    names = "|".join(re.escape(name) for name in sorted(commands, key=len, reverse=True))
    found = []
    for number, chunk in chunks:
        for match in re.finditer(rf"(?<![\w/.-])({names})(?![\w.-])", chunk):
            rest = SHELL_BREAK.split(chunk[match.end():], maxsplit=1)[0]
            options = [token.strip("[]").split("=")[0] for token in rest.split()]
            options = [token for token in options if OPTION.fullmatch(token)]
            found.append((number, commands[match.group(1)], options))
    return found


# ----------------------------------------------------------------------------- blocks that do not run

def python_imports(code: str) -> list[tuple[str, str | None]]:
    """(module, name) of every `from mgpt... import name` and (module, None) of every `import mgpt...`
    in a Python block; raises SyntaxError if the block is not Python."""
    import ast

    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mgpt":
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names if alias.name.split(".")[0] == "mgpt"]
    return found


def js_imports(code: str) -> list[str]:
    """The names a JavaScript block imports from mgpt's package, by its name or its entry file
    (`import { A, B as C } from 'mgpt'`, `from './mgpt/src/index.js'`)."""
    found = []
    for names in re.findall(r"import\s*\{([^}]*)\}\s*from\s*['\"](?:mgpt|[^'\"]*/src/index\.js)['\"]", code):
        found += [name.split(" as ")[0].strip() for name in names.split(",") if name.strip()]
    return found


def module_scripts(html: str) -> list[str]:
    """The code of an HTML block's `<script type="module">` elements."""
    return re.findall(r"<script\s[^>]*type=[\"']module[\"'][^>]*>(.*?)</script>", html, re.S | re.I)
