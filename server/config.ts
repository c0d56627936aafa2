/**
 * Every setting of the engine and the server, in one table: its flag, its environment
 * variable, its default and its description. The CLI (`--help`), start_server.sh and the
 * README's settings table all come from here.
 */
import type { WeightFormat } from './model/build/layers.ts';
import type { ModelOptions } from './model/load-model.ts';
import type { ResizePolicy } from './vision/smart-resize.ts';

export const WEIGHT_FORMATS: readonly WeightFormat[] = ['f32', 'int8', 'int4'];

export const ENGINE_DEFAULTS: ModelOptions = {
  // Full precision by default: users of quantized UI-TARS builds report worse grounding.
  format: 'f32',
  maxBatch: 8,
  // 4 GiB of KV cache holds ~73k tokens of UI-TARS-2B (57 KiB per token in float32).
  kvCacheBytes: 4 * 1024 ** 3,
  // One chunk holds a whole agent step's prompt at the seed's image size (786 tokens).
  prefillChunk: 1024,
  // An 8-agent run at the seed's image size re-sends 8 x 15 screenshots of 2.9 MB of features.
  imageCacheBytes: 1024 ** 3,
  // 8 agents' 15-step prompts at 800x450 (~7k tokens, 400 MB of float32 KV each).
  prefixCacheBytes: 4 * 1024 ** 3,
};

export function parseWeightFormat(value: string): WeightFormat {
  if ((WEIGHT_FORMATS as readonly string[]).includes(value)) return value as WeightFormat;
  throw new Error(`unknown weight format "${value}" (expected one of ${WEIGHT_FORMATS.join(', ')})`);
}

export interface ServerConfig {
  modelPath: string | null;
  servedModelName: string;
  host: string;
  ports: number[];
  format: WeightFormat;
  threads: number | null;
  maxModelLen: number | null;
  maxBatch: number;
  kvCacheGiB: number;
  imageCacheMiB: number;
  preparedImageCacheMiB: number;
  prefixCacheGiB: number;
  queueSize: number;
  /** 'smart' (smart_resize within min/max pixels) or a fixed box like '800x450'. */
  imagePolicy: string;
  maxImagesPerRequest: number;
  maxImageTokens: number;
  maxImageBytes: number;
  maxImagePixels: number;
  bodyLimitMiB: number;
  requestTimeoutSeconds: number;
  drainSeconds: number;
  logFile: string | null;
  /** When set, /v1/* and /tokenize require `Authorization: Bearer <apiKey>`. */
  apiKey: string | null;
  /** Hosts remote image URLs may name (null: remote image URLs are refused). */
  allowedImageHosts: string[] | null;
  /** Whether remote images may come from loopback, private or link-local addresses. */
  imageFetchAllowPrivate: boolean;
  imageFetchTimeoutMs: number;
  imageFetchMaxRedirects: number;
}

interface Setting<K extends keyof ServerConfig> {
  key: K;
  flag: string;
  env: string;
  description: string;
  default: ServerConfig[K];
  parse: (raw: string) => ServerConfig[K];
}

const int = (name: string, min: number) => (raw: string): number => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min} (got "${raw}")`);
  return n;
};
const num = (name: string, min: number) => (raw: string): number => {
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) throw new Error(`${name} must be a number >= ${min} (got "${raw}")`);
  return n;
};

const bool = (name: string) => (raw: string): boolean => {
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new Error(`${name} takes true or false (got "${raw}")`);
};

export function parseApiKey(raw: string): string {
  if (/[\s\x00-\x1f\x7f]/.test(raw)) throw new Error('--api-key must not contain spaces or control characters');
  return raw;
}

/**
 * "images.example.com,*.cdn.example.com,127.0.0.1": host names (a leading "*." matches any
 * subdomain) and IP addresses, normalised as URLs normalise them (lower case, IPv6 in brackets).
 */
export function parseImageHosts(raw: string): string[] {
  const hosts = raw.split(',').map((h) => h.trim()).filter((h) => h !== '');
  if (hosts.length === 0) throw new Error('--allowed-image-hosts takes a comma-separated list of host names');
  return hosts.map((h) => {
    const wildcard = h.startsWith('*.');
    const name = wildcard ? h.slice(2) : h;
    let host: string;
    try {
      host = new URL(`http://${name.includes(':') && !name.startsWith('[') ? `[${name}]` : name}/`).hostname;
    } catch {
      throw new Error(`--allowed-image-hosts: "${h}" is not a host name`);
    }
    if (!host || /[/?#@]/.test(name)) throw new Error(`--allowed-image-hosts: "${h}" is not a host name`);
    return wildcard ? `*.${host}` : host;
  });
}

/** "9000" or "9000-9007": one engine serves every port of the range. */
export function parsePorts(raw: string): number[] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(raw.trim());
  const lo = m ? Number(m[1]) : NaN;
  const hi = m?.[2] ? Number(m[2]) : lo;
  if (!m || lo < 1 || hi > 65535 || hi < lo || hi - lo > 255) throw new Error(`--port takes PORT or FIRST-LAST (got "${raw}")`);
  return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
}

export function parseImagePolicy(raw: string): string {
  if (raw === 'smart' || /^\d+x\d+$/.test(raw)) return raw;
  throw new Error(`--image-policy takes "smart" or WIDTHxHEIGHT such as 800x450 (got "${raw}")`);
}

/** The resize policy for a configured (or per-request) policy string and pixel bounds. */
export function resizePolicyFor(policy: string, minPixels: number, maxPixels: number): ResizePolicy {
  const m = /^(\d+)x(\d+)$/.exec(policy);
  if (m) return { kind: 'fixed', width: Number(m[1]), height: Number(m[2]), minPixels, maxPixels };
  return { kind: 'smart', minPixels, maxPixels };
}

type AnySetting = { [K in keyof ServerConfig]: Setting<K> }[keyof ServerConfig];

export const SETTINGS: AnySetting[] = [
  { key: 'modelPath', flag: '--model', env: 'MODEL_PATH', default: null, parse: (s) => s, description: 'Hugging Face checkpoint folder (default: the embedded tiny random-weight checkpoint)' },
  { key: 'servedModelName', flag: '--served-model-name', env: 'SERVED_MODEL_NAME', default: 'ui-tars', parse: (s) => s, description: 'model name clients send and /v1/models lists' },
  { key: 'host', flag: '--host', env: 'HOST', default: '127.0.0.1', parse: (s) => s, description: 'address to bind (loopback unless told otherwise)' },
  { key: 'ports', flag: '--port', env: 'PORT', default: [9000], parse: parsePorts, description: 'port, or a range such as 9000-9007 served by one engine' },
  { key: 'format', flag: '--weight-format', env: 'WEIGHT_FORMAT', default: 'f32', parse: parseWeightFormat, description: 'f32 | int8 | int4' },
  { key: 'threads', flag: '--threads', env: 'THREADS', default: null, parse: int('--threads', 1), description: 'ONNX Runtime threads (default: all cores)' },
  { key: 'maxModelLen', flag: '--max-model-len', env: 'MAX_MODEL_LEN', default: null, parse: int('--max-model-len', 16), description: "longest prompt + output in tokens (default and upper bound: the checkpoint's max_position_embeddings)" },
  { key: 'maxBatch', flag: '--max-num-seqs', env: 'MAX_NUM_SEQS', default: 8, parse: int('--max-num-seqs', 1), description: 'sequences decoded together' },
  { key: 'kvCacheGiB', flag: '--kv-cache-gib', env: 'KV_CACHE_GIB', default: ENGINE_DEFAULTS.kvCacheBytes / 1024 ** 3, parse: num('--kv-cache-gib', 0.001), description: 'memory for the KV cache; fewer sequences run at once when max-num-seqs x max-model-len does not fit' },
  { key: 'imageCacheMiB', flag: '--image-cache-mib', env: 'IMAGE_CACHE_MIB', default: ENGINE_DEFAULTS.imageCacheBytes / 1024 ** 2, parse: num('--image-cache-mib', 0), description: 'memory for vision-encoder outputs reused by image content (0: off); an agent re-sends its earlier screenshots' },
  { key: 'preparedImageCacheMiB', flag: '--prepared-image-cache-mib', env: 'PREPARED_IMAGE_CACHE_MIB', default: 1024, parse: num('--prepared-image-cache-mib', 0), description: 'memory for decoded and resized images reused by content (0: off), so re-sent screenshots are not decoded again' },
  { key: 'prefixCacheGiB', flag: '--prefix-cache-gib', env: 'PREFIX_CACHE_GIB', default: ENGINE_DEFAULTS.prefixCacheBytes / 1024 ** 3, parse: num('--prefix-cache-gib', 0), description: "memory for prompt KV reused by prompts that extend it (0: off); an agent's step extends its previous step's prompt" },
  { key: 'queueSize', flag: '--queue-size', env: 'QUEUE_SIZE', default: 64, parse: int('--queue-size', 0), description: 'requests that may wait beyond those running; more get 429 with Retry-After' },
  { key: 'imagePolicy', flag: '--image-policy', env: 'IMAGE_POLICY', default: 'smart', parse: parseImagePolicy, description: '"smart" (Qwen2-VL smart_resize) or a fixed box such as 800x450 (the ARPO seed\'s)' },
  { key: 'maxImagesPerRequest', flag: '--max-images', env: 'MAX_IMAGES', default: 16, parse: int('--max-images', 0), description: 'images kept per request; older ones are dropped first' },
  { key: 'maxImageTokens', flag: '--max-image-tokens', env: 'MAX_IMAGE_TOKENS', default: 2691, parse: int('--max-image-tokens', 4), description: 'image tokens per image (2691 = a full 1920x1080 screenshot); larger images are scaled down' },
  { key: 'maxImageBytes', flag: '--max-image-bytes', env: 'MAX_IMAGE_BYTES', default: 20 * 1024 * 1024, parse: int('--max-image-bytes', 1), description: 'encoded size limit per image' },
  { key: 'maxImagePixels', flag: '--max-image-pixels', env: 'MAX_IMAGE_PIXELS', default: 40_000_000, parse: int('--max-image-pixels', 1), description: 'decoded size limit per image (decompression bombs)' },
  { key: 'bodyLimitMiB', flag: '--max-body-mib', env: 'MAX_BODY_MIB', default: 128, parse: num('--max-body-mib', 0.001), description: 'request body limit; the default fits 15+ base64 full-resolution PNG screenshots' },
  { key: 'requestTimeoutSeconds', flag: '--request-timeout-seconds', env: 'REQUEST_TIMEOUT_SECONDS', default: 120, parse: num('--request-timeout-seconds', 0.1), description: 'time to receive a whole request (headers and body); a client that stalls is answered 408 and its place in the queue is freed' },
  { key: 'drainSeconds', flag: '--drain-seconds', env: 'DRAIN_SECONDS', default: 30, parse: num('--drain-seconds', 0), description: 'on SIGTERM, how long running requests may finish' },
  { key: 'logFile', flag: '--log-file', env: 'LOG_FILE', default: null, parse: (s) => s, description: 'also write the JSON log here' },
  { key: 'apiKey', flag: '--api-key', env: 'API_KEY', default: null, parse: parseApiKey, description: 'when set, /v1/*, /tokenize and every other route but /health, /metrics and the API docs require "Authorization: Bearer KEY"; prefer the variable (flags show in ps)' },
  { key: 'allowedImageHosts', flag: '--allowed-image-hosts', env: 'ALLOWED_IMAGE_HOSTS', default: null, parse: parseImageHosts, description: 'comma-separated hosts (*.example.com for subdomains) that http(s) image URLs may name; unset: only data URLs are accepted' },
  { key: 'imageFetchAllowPrivate', flag: '--image-fetch-allow-private', env: 'IMAGE_FETCH_ALLOW_PRIVATE', default: false, parse: bool('--image-fetch-allow-private'), description: 'let allowed image hosts resolve to loopback, private or link-local addresses (refused by default)' },
  { key: 'imageFetchTimeoutMs', flag: '--image-fetch-timeout-ms', env: 'IMAGE_FETCH_TIMEOUT_MS', default: 10_000, parse: int('--image-fetch-timeout-ms', 1), description: 'time limit for fetching one remote image, redirects included (its size limit is --max-image-bytes)' },
  { key: 'imageFetchMaxRedirects', flag: '--image-fetch-max-redirects', env: 'IMAGE_FETCH_MAX_REDIRECTS', default: 3, parse: int('--image-fetch-max-redirects', 0), description: 'redirects followed per remote image; every target is checked like the first URL' },
];

export function defaultServerConfig(): ServerConfig {
  const out: Record<string, unknown> = {};
  for (const s of SETTINGS) out[s.key] = s.default;
  return out as unknown as ServerConfig;
}

/** Defaults, then environment variables, then flags (already parsed to strings by the CLI). */
export function resolveServerConfig(env: NodeJS.ProcessEnv, flags: Record<string, string | undefined>): ServerConfig {
  const out: Record<string, unknown> = { ...defaultServerConfig() };
  for (const s of SETTINGS) {
    const fromFlag = flags[s.key];
    const raw = fromFlag ?? (env[s.env] !== undefined && env[s.env] !== '' ? env[s.env] : undefined);
    if (raw !== undefined) out[s.key] = s.parse(raw);
  }
  return out as unknown as ServerConfig;
}

export function modelOptionsFor(cfg: ServerConfig): ModelOptions {
  return {
    ...ENGINE_DEFAULTS,
    format: cfg.format,
    maxBatch: cfg.maxBatch,
    kvCacheBytes: cfg.kvCacheGiB * 1024 ** 3,
    imageCacheBytes: cfg.imageCacheMiB * 1024 ** 2,
    prefixCacheBytes: cfg.prefixCacheGiB * 1024 ** 3,
    ...(cfg.threads ? { threads: cfg.threads } : {}),
    ...(cfg.maxModelLen ? { maxModelLen: cfg.maxModelLen } : {}),
  };
}
