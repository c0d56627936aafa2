/**
 * A small typed ONNX graph builder over onnx-proto (protobufjs, IR version 8).
 *
 * - Inputs/outputs with symbolic (string) or fixed (number) dims.
 * - Initializers: small ones inline (raw_data), large ones streamed straight to an external data
 *   file (ONNX external_data: location, offset, length; offsets 64-byte aligned) the moment they are
 *   added, so a tensor's bytes are held in JS memory only while it is being written. Graphs larger
 *   than 2 GB therefore work: the protobuf itself only carries names, shapes and offsets.
 * - Nodes get ORT-GenAI style names (`/model/layers.0/attn/q_proj/MatMul`) and outputs
 *   (`<node name>/output_0`) unless the caller names them.
 * - Opsets: ai.onnx 17 and com.microsoft 1.
 */
import fs from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

const { onnx } = onnxProto;

export type DType = 'float32' | 'int64' | 'int32' | 'uint8' | 'int8';
export type Dim = number | string;
export type AttrValue = number | string | number[] | { ints: number[] } | { float: number } | { floats: number[] } | { graph: OnnxTypes.IGraphProto };
export type Attrs = Record<string, AttrValue | undefined>;
type TypedArray = Float32Array | BigInt64Array | Int32Array | Uint8Array | Int8Array;

const DTYPE_CODE: Record<DType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  uint8: onnx.TensorProto.DataType.UINT8,
  int8: onnx.TensorProto.DataType.INT8,
};

export const MS_DOMAIN = 'com.microsoft';
export const ONNX_OPSET = 17;
export const MS_OPSET = 1;
/** Initializers at or above this many bytes go to the external data file. */
export const DEFAULT_EXTERNAL_THRESHOLD = 1024;
const ALIGN = 64;

function dtypeOf(data: TypedArray): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Uint8Array) return 'uint8';
  return 'int8';
}

function valueInfo(name: string, dtype: DType, dims: readonly Dim[]): OnnxTypes.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: DTYPE_CODE[dtype],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, v: AttrValue): OnnxTypes.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) return { name, type: T.FLOAT, f: v };
    return { name, type: T.INT, i: v };
  }
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ('ints' in v) return { name, type: T.INTS, ints: v.ints };
  if ('floats' in v) return { name, type: T.FLOATS, floats: v.floats };
  if ('graph' in v) return { name, type: T.GRAPH, g: v.graph };
  return { name, type: T.FLOAT, f: v.float };
}

/** Helpers to force the attribute type where a JS number would be ambiguous. */
export const attr = {
  float: (x: number): AttrValue => ({ float: x }),
  ints: (x: number[]): AttrValue => ({ ints: x }),
};

/** A graph saved by a builder: its files and its interface. */
export interface BuiltGraph {
  modelPath: string;
  dataPath: string;
  /** Bytes of external initializer data written. */
  externalBytes: number;
  inputs: string[];
  outputs: string[];
}

export interface GraphBuilderOptions {
  /** Graph name stored in the model. */
  name: string;
  /** Absolute path of the external data file; needed when any initializer is large. */
  externalDataPath?: string;
  externalThreshold?: number;
}

export interface NodeOptions {
  /** Full node name (e.g. `/model/layers.0/attn/q_proj/MatMul`); default `/<opType>_<n>`. */
  name?: string;
  domain?: string;
  /** Output names; default `<name>/output_<i>`. A number gives that many default outputs. */
  outputs?: string[] | number;
}

export class GraphBuilder {
  readonly name: string;
  private readonly inputs: OnnxTypes.IValueInfoProto[] = [];
  private readonly outputs: OnnxTypes.IValueInfoProto[] = [];
  private readonly initializers: OnnxTypes.ITensorProto[] = [];
  private nodes: OnnxTypes.INodeProto[] = [];
  private readonly usedNames = new Set<string>();
  private readonly constCache = new Set<string>();
  private readonly externalPath: string | undefined;
  private readonly threshold: number;
  private fd: number | undefined;
  private offset = 0;
  private counter = 0;
  /** Bytes written to the external data file so far. */
  get externalBytes(): number {
    return this.offset;
  }

  get inputNames(): string[] {
    return this.inputs.map((v) => v.name!);
  }

  get outputNames(): string[] {
    return this.outputs.map((v) => v.name!);
  }

  constructor(opts: GraphBuilderOptions) {
    this.name = opts.name;
    this.externalPath = opts.externalDataPath;
    this.threshold = opts.externalThreshold ?? DEFAULT_EXTERNAL_THRESHOLD;
  }

  input(name: string, dtype: DType, dims: readonly Dim[]): string {
    this.claim(name);
    this.inputs.push(valueInfo(name, dtype, dims));
    return name;
  }

  output(name: string, dtype: DType, dims: readonly Dim[]): string {
    this.outputs.push(valueInfo(name, dtype, dims));
    return name;
  }

  /**
   * Adds an initializer. Large data is written to the external file now and not retained;
   * the caller may drop or reuse `data` as soon as this returns.
   */
  initializer(name: string, data: TypedArray, dims: readonly number[]): string {
    this.claim(name);
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new Error(`initializer ${name}: dims ${dims} hold ${count} values, data has ${data.length}`);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const t: OnnxTypes.ITensorProto = { name, dims: [...dims], dataType: DTYPE_CODE[dtypeOf(data)] };
    if (bytes.byteLength >= this.threshold && this.externalPath) {
      if (this.fd === undefined) this.fd = fs.openSync(this.externalPath, 'w');
      const start = Math.ceil(this.offset / ALIGN) * ALIGN;
      let written = 0;
      while (written < bytes.byteLength) {
        written += fs.writeSync(this.fd, bytes, written, bytes.byteLength - written, start + written);
      }
      this.offset = start + bytes.byteLength;
      t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
      t.externalData = [
        { key: 'location', value: path.basename(this.externalPath) },
        { key: 'offset', value: String(start) },
        { key: 'length', value: String(bytes.byteLength) },
      ];
    } else {
      t.rawData = Uint8Array.from(bytes); // copy: the caller may reuse its buffer
    }
    this.initializers.push(t);
    return name;
  }

  /** Small constant initializers (int64 vector or scalar, uint8, float), deduplicated by value. */
  constInt64(values: readonly number[], scalar = false): string {
    const label = `${scalar ? '' : '['}${values.join('_')}${scalar ? '' : ']'}`;
    return this.constant(`/model/constants/INT64/${label}`, BigInt64Array.from(values.map(BigInt)), scalar ? [] : [values.length]);
  }

  constUint8(value: number): string {
    return this.constant(`/model/constants/UINT8/${value}`, Uint8Array.of(value), []);
  }

  constFloat(value: number): string {
    return this.constant(`/model/constants/FLOAT/${value}`, Float32Array.of(value), []);
  }

  /** The name says type and value, so it is the deduplication key too. */
  private constant(name: string, data: TypedArray, dims: readonly number[]): string {
    if (!this.constCache.has(name)) {
      this.initializer(name, data, dims);
      this.constCache.add(name);
    }
    return name;
  }

  /** Adds a node; returns its output names. Use '' for an omitted optional input. */
  node(opType: string, inputs: readonly string[], attrs: Attrs = {}, opts: NodeOptions = {}): string[] {
    const name = opts.name ?? `/${opType}_${this.counter++}`;
    if (this.usedNames.has(`node:${name}`)) throw new Error(`duplicate node name ${name}`);
    this.usedNames.add(`node:${name}`);
    const outs =
      Array.isArray(opts.outputs) ? opts.outputs : Array.from({ length: opts.outputs ?? 1 }, (_, i) => `${name}/output_${i}`);
    for (const o of outs) this.claim(o);
    const attribute_: OnnxTypes.IAttributeProto[] = [];
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined) attribute_.push(attribute(k, v));
    this.nodes.push({ name, opType, domain: opts.domain ?? '', input: [...inputs], output: outs, attribute: attribute_ });
    return outs;
  }

  /**
   * A subgraph for a control-flow attribute (If's then_branch/else_branch): the nodes that `build`
   * adds go to the subgraph, which reads any value of the enclosing graph (initializers included);
   * `build` returns the values the subgraph outputs, in order.
   */
  subgraph(name: string, dtype: DType, build: () => string[]): AttrValue {
    const outer = this.nodes;
    this.nodes = [];
    try {
      const outputs = build().map((o) => ({ name: o, type: { tensorType: { elemType: DTYPE_CODE[dtype] } } }));
      return { graph: { name, node: this.nodes, output: outputs } };
    } finally {
      this.nodes = outer;
    }
  }

  /** Single-output convenience. */
  op(opType: string, inputs: readonly string[], attrs: Attrs = {}, opts: NodeOptions = {}): string {
    const outs = this.node(opType, inputs, attrs, opts);
    return outs[0]!;
  }

  private claim(name: string): void {
    if (this.usedNames.has(name)) throw new Error(`duplicate value name ${name}`);
    this.usedNames.add(name);
  }

  /** Serialises the model to `modelPath` and closes the external data file. */
  save(modelPath: string, producer = 'uitars-onnx-builder'): void {
    if (this.fd === undefined && this.externalPath) this.fd = fs.openSync(this.externalPath, 'w'); // always present
    if (this.fd !== undefined) {
      fs.fsyncSync(this.fd);
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: producer,
      producerVersion: '1',
      opsetImport: [
        { domain: '', version: ONNX_OPSET },
        { domain: MS_DOMAIN, version: MS_OPSET },
      ],
      graph: {
        name: this.name,
        node: this.nodes,
        input: this.inputs,
        output: this.outputs,
        initializer: this.initializers,
      },
    });
    const bytes = onnx.ModelProto.encode(model).finish();
    fs.writeFileSync(modelPath, bytes);
  }

  /** Closes the external data file without saving (error paths). */
  abort(): void {
    if (this.fd !== undefined) {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }
}
