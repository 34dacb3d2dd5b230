import { open } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { MIB } from "../../core/units.js";

/** A scalar metadata value of a GGUF file; arrays are skipped (only their length is kept). */
export type GgufValue = number | bigint | boolean | string | { arrayLength: number };

export interface GgufHeader {
  version: number;
  tensorCount: bigint;
  metadata: Map<string, GgufValue>;
}

/** A file that is not a GGUF model, or is cut short; `message` says which check failed. */
export class GgufError extends Error {
  override readonly name = "GgufError";
  readonly code = "invalid_gguf";
}

const enum ValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

const FIXED_SIZE: Partial<Record<ValueType, number>> = {
  [ValueType.UINT8]: 1,
  [ValueType.INT8]: 1,
  [ValueType.BOOL]: 1,
  [ValueType.UINT16]: 2,
  [ValueType.INT16]: 2,
  [ValueType.UINT32]: 4,
  [ValueType.INT32]: 4,
  [ValueType.FLOAT32]: 4,
  [ValueType.UINT64]: 8,
  [ValueType.INT64]: 8,
  [ValueType.FLOAT64]: 8,
};

/** Keys and strings longer than this mean a corrupt file, not a model. */
const MAX_STRING = 64 * MIB;

/**
 * Reads the header and metadata of a GGUF file (version 2 or 3), streaming through it so the
 * large tokenizer arrays are never held in memory.
 */
export async function readGgufHeader(path: string): Promise<GgufHeader> {
  const file = await open(path, "r");
  try {
    return await readHeader(new Reader(file));
  } finally {
    await file.close();
  }
}

/**
 * Checks that a file is a whole GGUF model: a readable header, tensor descriptions, and a file
 * long enough for every tensor's data. Throws a GgufError saying which check failed.
 */
export async function checkGgufComplete(path: string): Promise<GgufHeader> {
  const file = await open(path, "r");
  try {
    const reader = new Reader(file);
    const header = await readHeader(reader);
    let dataEnd = 0;
    for (let i = 0n; i < header.tensorCount; i++) {
      const name = await reader.string();
      const dims = await reader.u32();
      if (dims > 8) throw new GgufError(`corrupt GGUF tensor "${name}": ${dims} dimensions`);
      let elements = 1n;
      for (let d = 0; d < dims; d++) elements *= await reader.u64();
      const type = await reader.u32();
      const offset = await reader.u64();
      dataEnd = Math.max(dataEnd, Number(offset + tensorBytes(type, elements)));
    }
    const alignment = Number(header.metadata.get("general.alignment") ?? 32) || 32;
    const dataStart = Math.ceil(reader.offset / alignment) * alignment;
    const { size } = await file.stat();
    if (size < dataStart + dataEnd) {
      throw new GgufError(
        `truncated GGUF file: its tensors need ${dataStart + dataEnd} bytes, the file has ${size}`,
      );
    }
    return header;
  } finally {
    await file.close();
  }
}

/**
 * Bytes of a tensor for the common ggml types (block size, bytes per block); other types count
 * as one byte, so the check stays a lower bound and never refuses a whole file.
 */
const GGML_BLOCKS: Record<number, [number, number]> = {
  0: [1, 4], // F32
  1: [1, 2], // F16
  2: [32, 18], // Q4_0
  3: [32, 20], // Q4_1
  6: [32, 22], // Q5_0
  7: [32, 24], // Q5_1
  8: [32, 34], // Q8_0
  10: [256, 84], // Q2_K
  11: [256, 110], // Q3_K
  12: [256, 144], // Q4_K
  13: [256, 176], // Q5_K
  14: [256, 210], // Q6_K
  15: [256, 292], // Q8_K
  30: [1, 2], // BF16
};

function tensorBytes(type: number, elements: bigint): bigint {
  const block = GGML_BLOCKS[type];
  if (!block) return 1n;
  const [size, bytes] = block;
  return ((elements + BigInt(size) - 1n) / BigInt(size)) * BigInt(bytes);
}

async function readHeader(reader: Reader): Promise<GgufHeader> {
  const magic = (await reader.bytes(4)).toString("latin1");
  if (magic !== "GGUF")
    throw new GgufError(`not a GGUF file: it starts with ${JSON.stringify(magic)}, not "GGUF"`);
  const version = await reader.u32();
  if (version < 2 || version > 3)
    throw new GgufError(`unsupported GGUF version ${version} (2 and 3 are read)`);
  const tensorCount = await reader.u64();
  const kvCount = Number(await reader.u64());
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = await reader.string();
    metadata.set(key, await readValue(reader, await reader.u32()));
  }
  return { version, tensorCount, metadata };
}

async function readValue(reader: Reader, type: ValueType): Promise<GgufValue> {
  switch (type) {
    case ValueType.STRING:
      return reader.string();
    case ValueType.ARRAY: {
      const itemType = (await reader.u32()) as ValueType;
      const length = Number(await reader.u64());
      const size = FIXED_SIZE[itemType];
      if (size !== undefined) await reader.skip(size * length);
      else for (let i = 0; i < length; i++) await readValue(reader, itemType);
      return { arrayLength: length };
    }
    default: {
      const size = FIXED_SIZE[type];
      if (size === undefined)
        throw new GgufError(`corrupt GGUF metadata: unknown value type ${type}`);
      const bytes = await reader.bytes(size);
      return decodeScalar(type, bytes);
    }
  }
}

function decodeScalar(type: ValueType, bytes: Buffer): GgufValue {
  switch (type) {
    case ValueType.UINT8:
      return bytes.readUInt8(0);
    case ValueType.INT8:
      return bytes.readInt8(0);
    case ValueType.BOOL:
      return bytes.readUInt8(0) !== 0;
    case ValueType.UINT16:
      return bytes.readUInt16LE(0);
    case ValueType.INT16:
      return bytes.readInt16LE(0);
    case ValueType.UINT32:
      return bytes.readUInt32LE(0);
    case ValueType.INT32:
      return bytes.readInt32LE(0);
    case ValueType.FLOAT32:
      return bytes.readFloatLE(0);
    case ValueType.UINT64:
      return bytes.readBigUInt64LE(0);
    case ValueType.INT64:
      return bytes.readBigInt64LE(0);
    default:
      return bytes.readDoubleLE(0);
  }
}

/** Sequential little-endian reads over a file, in 1 MiB chunks. */
class Reader {
  #buffer = Buffer.alloc(0);
  #position = 0;

  constructor(private readonly file: FileHandle) {}

  /** How far into the file the reads have got. */
  get offset(): number {
    return this.#position - this.#buffer.length;
  }

  async u32(): Promise<number> {
    return (await this.bytes(4)).readUInt32LE(0);
  }

  async u64(): Promise<bigint> {
    return (await this.bytes(8)).readBigUInt64LE(0);
  }

  async string(): Promise<string> {
    const length = Number(await this.u64());
    if (length > MAX_STRING)
      throw new GgufError(`corrupt GGUF metadata: a string of ${length} bytes`);
    return (await this.bytes(length)).toString("utf8");
  }

  async skip(count: number): Promise<void> {
    while (count > 0) {
      const step = Math.min(count, MIB);
      await this.bytes(step);
      count -= step;
    }
  }

  async bytes(count: number): Promise<Buffer> {
    while (this.#buffer.length < count) {
      const chunk = Buffer.alloc(Math.max(MIB, count));
      const { bytesRead } = await this.file.read(chunk, 0, chunk.length, this.#position);
      if (bytesRead === 0) throw new GgufError("truncated GGUF file: it ends inside its header");
      this.#position += bytesRead;
      this.#buffer = Buffer.concat([this.#buffer, chunk.subarray(0, bytesRead)]);
    }
    const out = this.#buffer.subarray(0, count);
    this.#buffer = this.#buffer.subarray(count);
    return out;
  }
}
