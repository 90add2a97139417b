// Opening an mgpt .onnx file: an onnxruntime session plus the checks that it is an mgpt step graph
// (mgpt.runtime's modelfile.py). Every problem with the file becomes one ModelError whose message
// names the file and says what is wrong.

import {
  LOGITS, POSITION, TOKEN, MetadataError, checkSizes, grouped, modelInfo, pastNames, presentNames, quoted,
} from './metadata.js';
import { runInLane } from './lane.js';
import { ProtobufError, readModel } from './protobuf.js';

export class ModelError extends Error {
  name = 'ModelError';
}

const MAX_FILE_BYTES = 2 ** 31 - 1; // protobuf's own limit for one message

/**
 * The bytes of a model and the name its errors use, from a path (in Node), a URL, a Blob or File,
 * or bytes already in memory. Whatever comes from elsewhere is refused beyond `maxBytes`.
 * @param {string | URL | Blob | ArrayBuffer | ArrayBufferView} source
 * @returns {Promise<{bytes: Uint8Array, name: string}>}
 */
export async function readSource(source, maxBytes = MAX_FILE_BYTES) {
  if (source instanceof Uint8Array) return { bytes: source, name: 'the model bytes' };
  if (source instanceof ArrayBuffer) return { bytes: new Uint8Array(source), name: 'the model bytes' };
  if (ArrayBuffer.isView(source)) {
    return { bytes: new Uint8Array(source.buffer, source.byteOffset, source.byteLength), name: 'the model bytes' };
  }
  if (typeof Blob !== 'undefined' && source instanceof Blob) {
    const name = JSON.stringify('name' in source && typeof source.name === 'string' ? source.name : 'the model blob');
    if (source.size > maxBytes) throw tooLarge(name, source.size);
    return { bytes: new Uint8Array(await source.arrayBuffer()), name };
  }
  const isNode = typeof process !== 'undefined' && !!process.versions?.node;
  if (typeof source === 'string' && isNode && !/^[a-z][a-z0-9+.-]+:/i.test(source)) return readPath(source, maxBytes);
  if (typeof source === 'string' || source instanceof URL) {
    const url = new URL(source, globalThis.location?.href);
    if (url.protocol === 'file:' && isNode) {
      const { fileURLToPath } = await import('node:url');
      return readPath(fileURLToPath(url), maxBytes);
    }
    return fetchUrl(url, maxBytes);
  }
  throw new TypeError(`a model is a path, a URL, a Blob or bytes, got ${source === null ? 'null' : typeof source}`);
}

const tooLarge = (name, size) => new ModelError(`${name} has ${size} bytes, more than a model can have`);

async function readPath(path, maxBytes) {
  const fs = await import('node:fs/promises');
  const name = JSON.stringify(path);
  let stat;
  try {
    stat = await fs.stat(path);
  } catch (e) {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') {
      throw new ModelError(`model file ${name} does not exist; export one with mgpt-export or pass its path`);
    }
    throw new ModelError(`model file ${name} cannot be read (${e.code ?? e.message})`);
  }
  if (stat.isDirectory()) throw new ModelError(`model path ${name} is a directory; pass the .onnx file`);
  // a FIFO or a device would block or never end: only regular files are read
  if (!stat.isFile()) throw new ModelError(`model path ${name} is not a regular file; pass the .onnx file`);
  if (stat.size > maxBytes) throw tooLarge(`model file ${name}`, stat.size);
  try {
    return { bytes: await fs.readFile(path), name };
  } catch (e) {
    throw new ModelError(`model file ${name} cannot be read (${e.code ?? e.message})`);
  }
}

/** A model from a URL, refused beyond `maxBytes` as a file or a Blob is: by its Content-Length when
 * the server sends one, else (or when that lies) as soon as more has arrived. */
async function fetchUrl(url, maxBytes) {
  const name = JSON.stringify(url.href);
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new ModelError(`model ${name} cannot be fetched (${e.message})`);
  }
  if (!response.ok) throw new ModelError(`model ${name} cannot be fetched (HTTP ${response.status})`);
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > maxBytes) {
    await response.body?.cancel();
    throw tooLarge(`model ${name}`, declared);
  }
  if (!response.body) return { bytes: new Uint8Array(0), name };
  const reader = response.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (e) {
      throw new ModelError(`model ${name} cannot be fetched (${e.message})`);
    }
    if (chunk.done) break;
    size += chunk.value.length;
    if (size > maxBytes) {
      await reader.cancel();
      throw tooLarge(`model ${name}`, `over ${grouped(maxBytes)}`);
    }
    chunks.push(chunk.value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  return { bytes, name };
}

/**
 * An onnxruntime session on `bytes` and what the file says about itself, after checking that its
 * inputs, outputs and metadata are those of an mgpt step graph, that the file can hold the sizes
 * its metadata declares, and that a whole rollout of one row runs with the declared shapes and
 * finite logits (mgpt.runtime's checks, in the same order but for the protobuf read first).
 * @returns {Promise<{session: any, info: import('../index.js').ModelInfo}>}
 */
export async function openModel(ort, bytes, name, sessionOptions) {
  let model;
  try {
    model = readModel(bytes);
  } catch (e) {
    if (!(e instanceof ProtobufError)) throw e;
    throw new ModelError(`${name} is not an ONNX model (${e.message})`);
  }
  let info;
  try {
    info = modelInfo(model.props);
  } catch (e) {
    if (!(e instanceof MetadataError)) throw e;
    throw new ModelError(`${name} is an ONNX model but not an mgpt step graph: ${e.message}`);
  }
  const unusable = (problem) => new ModelError(`${name} is not a usable mgpt step graph: ${problem}; re-export it with mgpt-export`);
  let session;
  try {
    session = await ort.InferenceSession.create(bytes, sessionOptions);
  } catch (e) {
    const reason = firstLine(e);
    const hint = /opset|IR version/i.test(reason) ? '; export it with an opset this onnxruntime runs, e.g. mgpt-export --opset 17' : '';
    throw new ModelError(`${name} is not an ONNX model that onnxruntime can load (${reason})${hint}`);
  }
  let problem = ioProblem(session, info);
  if (!problem) {
    try {
      checkSizes(info, bytes.length); // before anything runs: a hostile block_size must not size the rollout
    } catch (e) {
      await session.release?.();
      throw new ModelError(`${name} is an ONNX model but not an mgpt step graph: ${e.message}`);
    }
    problem = await rolloutProblem(ort, session, info);
  }
  if (problem) {
    await session.release?.();
    throw unusable(problem);
  }
  return { session, info };
}

const REASON_CHARS = 500; // of onnxruntime's message: its opset refusal alone takes ~400

/** The parts of onnxruntime's messages that say where, not what, in any order: what its bindings
 * put first (onnxruntime-web's "Can't create a session. ERROR_CODE: 1, ERROR_MESSAGE:",
 * onnxruntime-node's "Load model from … failed:"), the "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT :"
 * prefix, and the C++ source location (e.g. /onnxruntime_src/…/model_load_utils.h:46) that native
 * messages begin with, a function signature after it. Python's onnxruntime_reason uses the same. */
const WHERE = /^(?:\s*(?:Load model from .*? failed:|.*?ERROR_CODE: \d+, ERROR_MESSAGE: |\[ONNXRuntimeError\] : \d+ : \w+ : |(\S+\.(?:h|hpp|cc|cpp|c):\d+\s)))+/;

/** onnxruntime's message for `error` reduced to its reason, one line of at most REASON_CHARS: the
 * parts above say nothing to the app's user and pushed the reason past the limit. */
export function firstLine(error) {
  let text = String(error?.message ?? error).trim().split('\n')[0].trim();
  const where = text.match(WHERE);
  if (where) {
    text = text.slice(where[0].length).trim();
    if (where[1]) text = withoutSignature(text);
  }
  return text.slice(0, REASON_CHARS) || String(error?.name ?? 'unknown error');
}

/** `text` without the C++ function signature it starts with ("void onnxruntime::f(const T&, int)"):
 * up to the parenthesis that closes the parameter list, which may hold parentheses of its own. */
function withoutSignature(text) {
  let depth = 0;
  for (let i = text.indexOf('('); i >= 0 && i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')' && --depth === 0) return text.slice(i + 1).replace(/^\s*(?:const\s+)?/, '');
  }
  return text;
}

/** The inputs and outputs a step graph of this shape declares: name -> [type, shape] (null: any). */
function expectedIO(info) {
  const cache = ['float32', [null, info.nHead, null, info.headDim]];
  const inputs = new Map([[TOKEN, ['int64', [null]]], [POSITION, ['int64', []]]]);
  const outputs = new Map([[LOGITS, ['float32', [null, info.vocabSize]]]]);
  for (let i = 0; i < info.nLayer; i++) {
    for (const n of pastNames(i)) inputs.set(n, cache);
    for (const n of presentNames(i)) outputs.set(n, cache);
  }
  return { inputs, outputs };
}

/** What is wrong with the session's inputs and outputs for this metadata, or null. Symbolic
 * dimensions (strings) match anything; fixed ones must equal the metadata's. */
function ioProblem(session, info) {
  const inputs = session.inputNames.length;
  if (info.nLayer > inputs) { // before listing the names: n_layer may say 10^12
    return `it has ${inputs} inputs, but n_layer ${grouped(info.nLayer)} needs ${grouped(2 + 2 * info.nLayer)}`;
  }
  const want = expectedIO(info);
  for (const [kind, expected, names, metadata] of [
    ['input', want.inputs, session.inputNames, session.inputMetadata],
    ['output', want.outputs, session.outputNames, session.outputMetadata]]) {
    const missing = [...expected.keys()].filter((n) => !names.includes(n));
    const extra = names.filter((n) => !expected.has(n));
    if (missing.length || extra.length) {
      return `its ${kind}s should be ${listed([...expected.keys()])}, it lacks ${listed(missing)} ` +
        `and has unexpected ${listed(extra)}`;
    }
    for (const arg of metadata ?? []) { // onnxruntime-common >= 1.21 describes them
      const [type, shape] = expected.get(arg.name);
      const dims = arg.shape ?? [];
      if (!arg.isTensor || arg.type !== type || dims.length !== shape.length ||
          dims.some((d, i) => typeof d === 'number' && shape[i] !== null && d !== shape[i])) {
        return `${kind} ${JSON.stringify(arg.name)} is ${arg.type} ${listed(dims)}, expected ${type} ` +
          `[${shape.map((d) => d ?? '?')}]`;
      }
    }
  }
  return null;
}

/** At most `most` names (or dimensions) as a message lists them, then how many more: a hostile
 * graph may have thousands of inputs, with names of any length. */
function listed(items, most = 6) {
  const shown = items.slice(0, most).map((x) => (typeof x === 'string' ? quoted(x) : String(x)));
  if (items.length > most) shown.push(`… ${grouped(items.length - most)} more`);
  return `[${shown.join(', ')}]`;
}

/** What goes wrong in a whole rollout of one row (BOS, then the most likely token, at every position
 * up to the block size), or null: a file whose declared inputs and outputs fit can still fail
 * inside, return other shapes or types than it declares, hold a position table shorter than its
 * block size, or give non-finite logits. */
async function rolloutProblem(ort, session, info) {
  const { nHead: H, headDim: D, vocabSize: V } = info;
  const feeds = { [TOKEN]: new ort.Tensor('int64', BigInt64Array.of(BigInt(info.bos)), [1]) };
  for (let i = 0; i < info.nLayer; i++) {
    for (const n of pastNames(i)) feeds[n] = new ort.Tensor('float32', new Float32Array(0), [1, H, 0, D]);
  }
  for (let p = 0; p < info.blockSize; p++) {
    feeds[POSITION] = new ort.Tensor('int64', BigInt64Array.of(BigInt(p)), []);
    let out;
    try {
      out = await runInLane(ort, session, feeds);
    } catch (e) {
      return `its step at position ${p} fails in onnxruntime (${firstLine(e)})`;
    }
    /** @type {[string, number[]][]} */
    const shapes = [[LOGITS, [1, V]]];
    for (let i = 0; i < info.nLayer; i++) for (const n of presentNames(i)) shapes.push([n, [1, H, p + 1, D]]);
    for (const [n, shape] of shapes) {
      if (out[n]?.type !== 'float32') return `its step at position ${p} returns ${n} as ${out[n]?.type}, not float32`;
      const dims = out[n].dims;
      if (dims.length !== shape.length || dims.some((d, j) => d !== shape[j])) {
        return `its step at position ${p} returns ${n} of shape [${dims}], expected [${shape}]`;
      }
    }
    const logits = out[LOGITS].data;
    if (!logits.every(Number.isFinite)) return `its step at position ${p} gives non-finite logits`;
    const next = logits.indexOf(Math.max(...logits));
    feeds[TOKEN] = new ort.Tensor('int64', BigInt64Array.of(BigInt(next)), [1]);
    for (let i = 0; i < info.nLayer; i++) {
      const [pk, pv] = pastNames(i), [ok, ov] = presentNames(i);
      feeds[pk] = out[ok];
      feeds[pv] = out[ov];
    }
  }
  return null;
}
