#!/usr/bin/env node
// `npm test`: node --test over test/*.test.js, or over the files named (`npm test -- test/sampling.test.js`;
// other arguments go to node, e.g. `npm test -- --test-reporter=tap`).
//
// Most files check the JavaScript runtime against Python's reference (tests/js_reference.py writes its
// samples, logits, scores and bad model files), found through MGPT_JS_REFERENCE:
//  1. MGPT_JS_REFERENCE set (pytest's tests/test_js.py sets it): that folder, as it is;
//  2. else a Python that has mgpt (MGPT_PYTHON, python3 or python on PATH, the repository's .venv)
//     writes one, once for the whole run, into a temporary folder removed afterwards;
//  3. else the files that need it (those importing ./reference.js) are skipped, with one line saying
//     how to run them, and the others run.
// page.test.js drives Chromium too (MGPT_CHROMIUM, or chromium on PATH), and is skipped without it.
// With MGPT_REQUIRE_JS set (CI sets it) a skip is a failure.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const JS = fileURLToPath(new URL('..', import.meta.url));
const REPO = join(JS, '..', '..');
const WRITER = join(REPO, 'tests', 'js_reference.py');
const PROBE = 'import mgpt.export, mgpt.runtime, mgpt.train; print(mgpt.runtime.__file__)';
const HOW = 'pip install -e ../.. (in a virtualenv) or set MGPT_PYTHON to a Python that has mgpt, ' +
  'or run them through pytest (python -m pytest tests/test_js.py in the repository)';

function die(message) {
  process.stderr.write(`Error: ${message}\n`);
  process.exit(1);
}

/** The executable file `name` on PATH, or null. */
function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const path = join(dir, name);
    if (existsSync(path) && statSync(path).isFile()) return path;
  }
  return null;
}

/** The first Python that imports mgpt, as { python, where }, or { tried } naming each one that did not. */
function findPython(env) {
  const venv = join(REPO, '.venv', process.platform === 'win32' ? 'Scripts/python.exe' : 'bin/python');
  const candidates = [process.env.MGPT_PYTHON, 'python3', 'python', existsSync(venv) ? venv : null].filter(Boolean);
  const tried = [];
  for (const python of candidates) {
    const done = spawnSync(python, ['-c', PROBE], { encoding: 'utf8', env, timeout: 60000 });
    if (done.status === 0) return { python, where: done.stdout.trim() };
    tried.push(done.error ? `${python} (${done.error.code === 'ENOENT' ? 'not found' : done.error.code})` : `${python} (no mgpt)`);
  }
  return { tried };
}

/** Runs a command (stdio as given), forwarding Ctrl-C and SIGTERM to it; resolves to its exit status. */
let running = null;
let stopped = null;
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => { stopped = signal; running?.kill(signal); });
function run(command, args, options) {
  if (stopped) return Promise.resolve(128 + (stopped === 'SIGINT' ? 2 : 15));
  return new Promise((resolve) => {
    running = spawn(command, args, options);
    running.on('error', (e) => {
      process.stderr.write(`Error: ${command} could not start: ${e.message}\n`);
      resolve(127);
    });
    running.on('exit', (code, signal) => resolve(code ?? 128 + (signal === 'SIGINT' ? 2 : 15)));
  });
}

const major = Number(process.versions.node.split('.')[0]);
if (major < 20) die(`the tests need Node.js 20 or newer (package.json's engines), and this is ${process.version}`);

// the arguments: test files, or node's options
const args = process.argv.slice(2);
const named = args.filter((a) => !a.startsWith('-'));
const files = named.length ? named : readdirSync(join(JS, 'test')).filter((f) => f.endsWith('.test.js')).sort().map((f) => `test/${f}`);
const nodeOptions = args.filter((a) => a.startsWith('-'));

for (const file of files) if (!existsSync(join(JS, file))) die(`no test file ${file} in ${JS}`);
const missing = Object.keys(JSON.parse(readFileSync(join(JS, 'package.json'), 'utf8')).devDependencies)
  .filter((name) => !existsSync(join(JS, 'node_modules', name, 'package.json')));
if (missing.length) die(`the tests' packages are not installed (${missing.join(', ')}): run npm ci --ignore-scripts in ${JS} first`);

// A folder of the run's own, removed on exit: the reference, and TMPDIR for every process started here
// (onnxruntime leaves files in TMPDIR: Python's a .ses, Node's 1.30 an empty mat-debug-<pid>.log per process
// that opens a session; Chromium its profile).
const scratch = mkdtempSync(join(tmpdir(), 'mgpt-js-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));
const env = { ...process.env, TMPDIR: join(scratch, 'tmp') };
mkdirSync(env.TMPDIR);

const needsReference = (file) => /from '\.\/reference\.js'/.test(readFileSync(join(JS, file), 'utf8'));
let selected = files;
const skips = [];
/** Leaves out the selected files that `needs` picks, with a line saying why. */
function skip(needs, reason) {
  const which = selected.filter(needs);
  if (which.length) skips.push(`skipped ${which.join(', ')}: ${reason}`);
  selected = selected.filter((f) => !which.includes(f));
}

let python = null;
if (!process.env.MGPT_JS_REFERENCE && files.some(needsReference)) {
  const found = findPython(env);
  if (found.python) python = found;
  else skip(needsReference, `no Python with mgpt to write the reference (tried ${found.tried.join(', ')}); ${HOW}`);
}
const chromium = process.env.MGPT_CHROMIUM || onPath('chromium');
if (!chromium) skip((f) => f.endsWith('page.test.js'), 'Chromium not found: install it (Debian: apt-get install chromium) or set MGPT_CHROMIUM to its binary');
if (skips.length && process.env.MGPT_REQUIRE_JS) die(`${skips.join('; ')} (MGPT_REQUIRE_JS is set, so this is a failure)`);
for (const line of skips) console.log(line);
if (!selected.length) process.exit(0);
if (chromium) env.MGPT_CHROMIUM = chromium;

if (python) {
  env.MGPT_JS_REFERENCE = join(scratch, 'reference');
  console.log(`reference: ${python.python} ${WRITER} (mgpt.runtime from ${dirname(python.where)})`);
  const status = await run(python.python, [WRITER, env.MGPT_JS_REFERENCE], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  if (status !== 0) die(`${python.python} ${WRITER} could not write the reference (exit status ${status})`);
}
process.exit(await run(process.execPath, ['--test', ...nodeOptions, ...selected], { cwd: JS, env, stdio: 'inherit' }));
