// A small reader of the protobuf wire format, for the few fields of an ONNX ModelProto that
// onnxruntime's JavaScript API does not expose (its metadata_props, onnxruntime issue #16547).
//
// Every length and offset is checked against the buffer, so a truncated or hostile file ends in a
// ProtobufError (never a hang, a RangeError from a DataView, or a read past the end).

export class ProtobufError extends Error {
  name = 'ProtobufError';
}

const VARINT = 0, I64 = 1, LEN = 2, I32 = 5;

// ModelProto (onnx.proto): the fields read here, and the wire type each must have.
const MODEL_IR_VERSION = 1, MODEL_GRAPH = 7, MODEL_METADATA_PROPS = 14;
const MODEL_FIELDS = new Map([[1, VARINT], [2, LEN], [3, LEN], [4, LEN], [5, VARINT], [6, LEN], [7, LEN],
  [8, LEN], [14, LEN], [20, LEN], [25, LEN], [26, LEN]]);
// StringStringEntryProto {1: key, 2: value}
const ENTRY_KEY = 1, ENTRY_VALUE = 2;

/** One field as it is read: its number, wire type, and value (a number for varints and fixed
 * ints, the [start, end) of its bytes for length-delimited fields). */
class Reader {
  /** @param {Uint8Array} bytes @param {number} start @param {number} end */
  constructor(bytes, start = 0, end = bytes.length) {
    this.bytes = bytes;
    this.pos = start;
    this.end = end;
  }

  /** A varint as a number (exact below 2^53; only its size matters above that). */
  varint() {
    let value = 0, scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new ProtobufError(`truncated varint at byte ${this.pos}`);
      const b = this.bytes[this.pos++];
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 128;
    }
    throw new ProtobufError(`varint longer than 10 bytes at byte ${this.pos}`);
  }

  /** The next field, or null at the end: {field, type, value, start, end}. */
  next() {
    if (this.pos >= this.end) return null;
    const at = this.pos, tag = this.varint();
    const field = Math.floor(tag / 8), type = tag % 8;
    if (field < 1 || field > 536870911) throw new ProtobufError(`invalid field number ${field} at byte ${at}`);
    switch (type) {
      case VARINT:
        return { field, type, value: this.varint(), start: 0, end: 0 };
      case I64: return { field, type, value: 0, start: this.skip(8), end: this.pos };
      case I32: return { field, type, value: 0, start: this.skip(4), end: this.pos };
      case LEN: {
        const length = this.varint();
        return { field, type, value: length, start: this.skip(length), end: this.pos };
      }
      default:
        throw new ProtobufError(`unsupported wire type ${type} at byte ${at}`);
    }
  }

  /** Skips `length` bytes and returns where they start. */
  skip(length) {
    if (length > this.end - this.pos) {
      throw new ProtobufError(`a field of ${length} bytes at byte ${this.pos} runs past the end (${this.end})`);
    }
    const start = this.pos;
    this.pos += length;
    return start;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function text(bytes, start, end) {
  try {
    return utf8.decode(bytes.subarray(start, end));
  } catch {
    throw new ProtobufError(`a string at byte ${start} is not valid UTF-8`);
  }
}

/**
 * What the ModelProto in `bytes` says that onnxruntime's JavaScript API does not: `props`, its
 * metadata_props as [key, value] pairs in file order (duplicates kept, for the caller to refuse).
 * Every top-level field is walked, so a file cut short anywhere is refused here.
 * @param {Uint8Array} bytes
 * @returns {{irVersion: number, props: [string, string][]}}
 */
export function readModel(bytes) {
  const model = new Reader(bytes);
  const props = [];
  let irVersion = 0, graph = false;
  for (let f = model.next(); f; f = model.next()) {
    const want = MODEL_FIELDS.get(f.field);
    if (want !== undefined && want !== f.type) {
      throw new ProtobufError(`field ${f.field} has wire type ${f.type}, not ${want}, so this is not a ModelProto`);
    }
    if (f.field === MODEL_IR_VERSION) irVersion = f.value;
    else if (f.field === MODEL_GRAPH) graph = true;
    else if (f.field === MODEL_METADATA_PROPS) props.push(readEntry(bytes, f));
  }
  if (!irVersion || !graph) throw new ProtobufError('it has no ir_version or no graph, so it is not a ModelProto');
  return { irVersion, props };
}

/** A StringStringEntryProto's [key, value] (either may be absent: '').
 * @returns {[string, string]} */
function readEntry(bytes, at) {
  const entry = new Reader(bytes, at.start, at.end);
  let key = '', value = '';
  for (let f = entry.next(); f; f = entry.next()) {
    if (f.type !== LEN) continue;
    if (f.field === ENTRY_KEY) key = text(bytes, f.start, f.end);
    else if (f.field === ENTRY_VALUE) value = text(bytes, f.start, f.end);
  }
  return [key, value];
}
