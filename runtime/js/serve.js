#!/usr/bin/env node
// Serves the page (web/), the runtime (src/), onnxruntime-web's three wasm files and a model on
// 127.0.0.1, and prints the address:  node runtime/js/serve.js [--port N] [--model FILE]
// The page's picker lists the model (as /model.onnx) and, in mgpt's repository, the shipped ones
// (models/*.onnx as /models/NAME.onnx), from /models.json. Only those files are served; everything
// runs in the browser.

import { createReadStream, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { basename, dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = dirname(fileURLToPath(import.meta.url));
// the repository's shipped model: there only when serve.js runs from mgpt's repository, not from an
// installed package
const SHIPPED = join(HERE, '..', '..', 'models');
const DEFAULT_MODEL = join(SHIPPED, 'names.onnx');
const ORT_FILES = ['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'];
const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.wasm': 'application/wasm', '.onnx': 'application/octet-stream',
};
const USAGE = 'usage: node serve.js [--port N (default 8000; 0 picks a free one)] [--host 127.0.0.1] [--model FILE.onnx]';

/** Exits with one line: status 2 for a mistaken option, 1 for a file or the port. */
function die(message, status) {
  process.stderr.write(`Error: ${message}\n`);
  process.exit(status);
}

function options() {
  let values;
  try {
    ({ values } = parseArgs({
      options: { port: { type: 'string', default: '8000' }, host: { type: 'string', default: '127.0.0.1' },
        model: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (e) {
    die(`${e.message.split('\n')[0]}; ${USAGE}`, 2);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  if (!/^\d+$/.test(values.port) || Number(values.port) > 65535) die(`--port must be an integer from 0 to 65535, got ${JSON.stringify(values.port)}`, 2);
  const model = values.model ?? DEFAULT_MODEL;
  let stat;
  try {
    stat = statSync(model);
  } catch {
    if (values.model === undefined) {
      die(`the default model ${JSON.stringify(model)} (mgpt's repository's shipped one) does not exist here; ` +
        'pass --model FILE with an .onnx written by mgpt-export', 1);
    }
    die(`model file ${JSON.stringify(model)} does not exist; pass an .onnx written by mgpt-export with --model`, 1);
  }
  if (!stat.isFile()) die(`model path ${JSON.stringify(model)} is not a regular file; pass the .onnx file with --model`, 1);
  return { port: Number(values.port), host: values.host, model: resolve(model) };
}

/** The onnxruntime-web dist folder, from the installed package. */
function ortDist() {
  try {
    return dirname(fileURLToPath(import.meta.resolve('onnxruntime-web')));
  } catch {
    die(`onnxruntime-web is not installed: run \`npm ci --ignore-scripts\` in ${HERE}`, 1);
  }
}

/** The models the page's picker offers, as [{name, url, file}]: the served one first (named after its
 * file), then the repository's shipped ones (none outside mgpt's repository) other than it. */
function pickable(model) {
  let shipped = [];
  try {
    shipped = readdirSync(SHIPPED).filter((f) => f.endsWith('.onnx')).sort().map((f) => join(SHIPPED, f));
  } catch { /* an installed package: no shipped models */ }
  const name = (file) => basename(file, '.onnx');
  return [{ name: name(model), url: '/model.onnx', file: model },
    ...shipped.filter((f) => resolve(f) !== model).map((f) => ({ name: name(f), url: `/models/${basename(f)}`, file: f }))];
}

/** URL path -> file, only inside the served folders (no `..` escapes) or among the named files;
 * /models.json is `listing`, served from memory. */
function router(models, dist) {
  const folders = { '/web/': join(HERE, 'web'), '/src/': join(HERE, 'src') };
  const files = new Map([['/web/', join(HERE, 'web', 'index.html')], ...models.map((m) => [m.url, m.file]),
    ...ORT_FILES.map((name) => [`/ort/${name}`, join(dist, name)])]);
  return (path) => {
    if (files.has(path)) return files.get(path);
    for (const [prefix, folder] of Object.entries(folders)) {
      if (!path.startsWith(prefix)) continue;
      const file = resolve(folder, `.${path.slice(prefix.length - 1)}`);
      const inside = relative(folder, file);
      return inside && !inside.startsWith('..') && !inside.startsWith(sep) ? file : null;
    }
    return null;
  };
}

function serve({ port, host, model }) {
  const models = pickable(model);
  const listing = JSON.stringify(models.map(({ name, url }) => ({ name, url })));
  const route = router(models, ortDist());
  const server = createServer((request, response) => {
    let url, path;
    try {
      url = new URL(request.url, 'http://localhost');
      path = decodeURIComponent(url.pathname);
    } catch {
      path = null;
    }
    if (path === '/') { // the page is /web/ (so that its own files are beside it); keep the query
      response.writeHead(302, { location: `/web/${url.search}` }).end();
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end('only GET and HEAD\n');
      return;
    }
    if (path === '/models.json') {
      const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(listing), 'cache-control': 'no-cache' };
      response.writeHead(200, headers).end(request.method === 'HEAD' ? undefined : listing);
      return;
    }
    const file = path === null ? null : route(path);
    let size = -1;
    try {
      if (file) size = statSync(file).isFile() ? statSync(file).size : -1;
    } catch { /* not found */ }
    if (size < 0) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    response.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-length': size, 'cache-control': 'no-cache' });
    if (request.method === 'HEAD') response.end(); // a GET's headers, without its body
    else createReadStream(file).pipe(response);
  });
  server.on('error', (e) => {
    if (e.code === 'EADDRINUSE') die(`port ${port} on ${host} is in use; pass another with --port (0 picks a free one)`, 1);
    die(`cannot serve on ${host}:${port} (${e.code ?? e.message})`, 1);
  });
  server.listen(port, host, () => {
    const address = server.address();
    const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    process.stdout.write(`serving the mgpt page at http://${shown}:${address.port}/ with ${model} (Ctrl-C to stop)\n`);
  });
  // Ctrl-C or a kill stops at once: there is nothing to save, and waiting for browsers' keep-alive
  // connections to close would keep the port for seconds
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
}

serve(options());
