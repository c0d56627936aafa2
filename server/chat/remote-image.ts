/**
 * Remote image URLs, when the operator turns them on (--allowed-image-hosts). An http(s) URL
 * is fetched with undici only if:
 * - its host is on the allow-list (exact name or address, or "*.example.com" for subdomains);
 * - every address the host resolves to (dns.lookup, all of them, IPv4 and IPv6) is public:
 *   loopback, private, link-local, CGNAT, multicast, reserved and documentation ranges are
 *   refused, IPv4 embedded in IPv6 (::ffff:127.0.0.1, ::ffff:7f00:1, NAT64, 6to4) is judged
 *   as the IPv4 address it carries, unless --image-fetch-allow-private says otherwise;
 * - the connection goes to exactly the addresses checked (the lookup is pinned: no second DNS
 *   answer can slip in between the check and the connect);
 * - the answer comes within --image-fetch-timeout-ms (redirects included), is 2xx, and is at
 *   most --max-image-bytes (Content-Length checked first, then counted while reading);
 * - redirects are followed manually, at most --image-fetch-max-redirects, and every target is
 *   checked as the first URL was.
 * Every refusal is a 400 in OpenAI's error shape, naming the host but nothing internal.
 */
import dns from 'node:dns/promises';
import net, { type LookupFunction } from 'node:net';
import { Agent, request } from 'undici';
import { ApiError, clip, invalidRequest } from '../api/errors.ts';

export interface RemoteImagePolicy {
  /** Normalised host names / addresses; "*.suffix" entries match subdomains. */
  allowedHosts: readonly string[];
  allowPrivate: boolean;
  timeoutMs: number;
  maxRedirects: number;
  maxBytes: number;
}

export type RemoteImageErrorCode =
  | 'remote_image_host_not_allowed'
  | 'remote_image_address_not_allowed'
  | 'remote_image_fetch_failed'
  | 'remote_image_too_large'
  | 'remote_image_timeout'
  | 'remote_image_too_many_redirects';

const refuse = (param: string, code: RemoteImageErrorCode, message: string): ApiError => invalidRequest(`${param}: ${message}`, param, code);

// ---------------------------------------------------------------------------------------------
// Address classification

/** IPv4 ranges that are not public unicast (RFC 6890 special-purpose registry, and friends). */
const BLOCKED_V4: readonly [string, number][] = [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (cloud metadata lives here)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and 255.255.255.255 broadcast
];

function v4ToInt(address: string): number | null {
  const parts = address.split('.');
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return null;
    n = n * 256 + Number(p);
  }
  return n;
}

const BLOCKED_V4_INT = BLOCKED_V4.map(([base, bits]) => {
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return { base: (v4ToInt(base)! & mask) >>> 0, mask };
});

function isPublicV4Int(n: number): boolean {
  return !BLOCKED_V4_INT.some(({ base, mask }) => ((n & mask) >>> 0) === base);
}

/** The eight 16-bit groups of an IPv6 address (zone id dropped, an embedded dotted quad read), or null. */
export function parseIPv6(address: string): number[] | null {
  let a = address.replace(/^\[|\]$/g, '');
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  if (!net.isIPv6(a)) return null;
  const lastColon = a.lastIndexOf(':');
  const last = a.slice(lastColon + 1);
  if (last.includes('.')) {
    const v4 = v4ToInt(last);
    if (v4 === null) return null;
    a = `${a.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const halves = a.split('::');
  if (halves.length > 2) return null;
  const groups = (s: string | undefined): number[] => (s === undefined || s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  if (halves.length === 1) return head.length === 8 ? head : null;
  const missing = 8 - head.length - tail.length;
  if (missing < 1) return null;
  return [...head, ...Array.from({ length: missing }, () => 0), ...tail];
}

/**
 * Whether `address` (an IPv4 or IPv6 literal) is a public unicast address; everything else
 * (loopback, private, link-local, unique-local, multicast, unspecified, documentation, and
 * IPv6 forms that carry a non-public IPv4 address) is not. Unparseable input is not public.
 */
export function isPublicAddress(address: string): boolean {
  const v4 = v4ToInt(address);
  if (v4 !== null) return isPublicV4Int(v4);
  const g = parseIPv6(address);
  if (!g) return false;
  const embeddedV4 = (hi: number, lo: number): number => ((g[hi]! << 16) | g[lo]!) >>> 0;
  const zeroPrefix = (n: number) => g.slice(0, n).every((x) => x === 0);
  if (zeroPrefix(8)) return false; // ::
  if (zeroPrefix(7) && g[7] === 1) return false; // ::1
  if (zeroPrefix(5) && g[5] === 0xffff) return isPublicV4Int(embeddedV4(6, 7)); // ::ffff:a.b.c.d (mapped)
  if (zeroPrefix(4) && g[4] === 0xffff && g[5] === 0) return isPublicV4Int(embeddedV4(6, 7)); // ::ffff:0:a.b.c.d (translated)
  if (zeroPrefix(6)) return isPublicV4Int(embeddedV4(6, 7)); // ::a.b.c.d (compatible, deprecated)
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return isPublicV4Int(embeddedV4(6, 7)); // NAT64
  if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 1) return false; // local-use NAT64
  if (g[0] === 0x2002) return isPublicV4Int(embeddedV4(1, 2)); // 6to4
  if (g[0] === 0x2001 && g[1] === 0) return false; // Teredo: the IPv4 it reaches is hidden
  if (g[0] === 0x2001 && g[1] === 0xdb8) return false; // documentation
  if (g[0] === 0x100 && g.slice(1, 4).every((x) => x === 0)) return false; // discard-only
  if ((g[0]! & 0xfe00) === 0xfc00) return false; // unique local fc00::/7
  if ((g[0]! & 0xffc0) === 0xfe80) return false; // link-local fe80::/10
  if ((g[0]! & 0xffc0) === 0xfec0) return false; // site-local fec0::/10 (deprecated)
  if ((g[0]! & 0xff00) === 0xff00) return false; // multicast
  return true;
}

// ---------------------------------------------------------------------------------------------
// Hosts

/** A URL's host as the allow-list holds it: lower case, no trailing dot, IPv6 in brackets. */
function normalHost(url: URL): string {
  return url.hostname.toLowerCase().replace(/\.$/, '');
}

export function hostAllowed(host: string, allowed: readonly string[]): boolean {
  return allowed.some((entry) => (entry.startsWith('*.') ? host.endsWith(entry.slice(1)) && host.length > entry.length - 1 : host === entry));
}

interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Every address of `host`, each checked; the host's addresses when all pass. */
async function resolveChecked(url: URL, policy: RemoteImagePolicy, param: string): Promise<ResolvedAddress[]> {
  const bare = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: ResolvedAddress[];
  if (net.isIP(bare)) {
    addresses = [{ address: bare, family: net.isIPv6(bare) ? 6 : 4 }];
  } else {
    try {
      const found = await dns.lookup(bare, { all: true, verbatim: true });
      addresses = found.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
    } catch {
      throw refuse(param, 'remote_image_fetch_failed', `cannot resolve the image host ${url.hostname}`);
    }
  }
  if (addresses.length === 0) throw refuse(param, 'remote_image_fetch_failed', `cannot resolve the image host ${url.hostname}`);
  if (!policy.allowPrivate) {
    const bad = addresses.find((a) => !isPublicAddress(a.address));
    if (bad) {
      throw refuse(
        param,
        'remote_image_address_not_allowed',
        `the image host ${url.hostname} resolves to ${bad.address}, a loopback, private or link-local address; this server does not fetch from those`,
      );
    }
  }
  return addresses;
}

function checkUrl(raw: string, policy: RemoteImagePolicy, param: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalidRequest(`${param}: image_url.url is not a valid URL`, param, 'invalid_image_url');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw invalidRequest(`${param}: only http(s) and data URLs are accepted`, param, 'invalid_image_url');
  }
  if (url.username || url.password) throw invalidRequest(`${param}: image URLs must not carry credentials`, param, 'invalid_image_url');
  const host = normalHost(url);
  if (!hostAllowed(host, policy.allowedHosts)) {
    throw refuse(param, 'remote_image_host_not_allowed', `the image host ${clip(url.hostname, 100)} is not on this server's --allowed-image-hosts list`);
  }
  return url;
}

/** A lookup that answers only with the addresses already checked for this host. */
function pinnedLookup(hostname: string, addresses: readonly ResolvedAddress[]): LookupFunction {
  return (name, options, callback) => {
    if (name.replace(/^\[|\]$/g, '') !== hostname) {
      callback(Object.assign(new Error('unexpected host'), { code: 'ENOTFOUND' }), '', 4);
      return;
    }
    const usable = addresses.filter((a) => !options.family || options.family === a.family);
    if (usable.length === 0) {
      callback(Object.assign(new Error('no address'), { code: 'ENOTFOUND' }), '', 4);
      return;
    }
    if (options.all) (callback as unknown as (err: null, list: ResolvedAddress[]) => void)(null, usable);
    else callback(null, usable[0]!.address, usable[0]!.family);
  };
}

function describeNetworkError(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'connection reset';
    case 'ENOTFOUND':
      return 'host not found';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    default:
      return 'network error';
  }
}

/**
 * Fetches an allowed remote image; throws ApiError (400) for every refusal or failure, and
 * the caller's own abort (client gone) as it comes.
 */
export async function fetchRemoteImage(raw: string, policy: RemoteImagePolicy, param: string, signal?: AbortSignal): Promise<Uint8Array> {
  const deadline = AbortSignal.timeout(policy.timeoutMs);
  const combined = signal ? AbortSignal.any([signal, deadline]) : deadline;
  let url = checkUrl(raw, policy, param);
  for (let redirects = 0; ; redirects++) {
    const addresses = await withDeadline(resolveChecked(url, policy, param), combined, policy, param);
    const agent = new Agent({
      connect: { lookup: pinnedLookup(url.hostname.replace(/^\[|\]$/g, ''), addresses), timeout: policy.timeoutMs },
      headersTimeout: policy.timeoutMs,
      bodyTimeout: policy.timeoutMs,
      connections: 1,
      pipelining: 0,
    });
    try {
      let res: Awaited<ReturnType<typeof request>>;
      try {
        res = await request(url, {
          method: 'GET',
          dispatcher: agent,
          signal: combined,
          headers: { accept: 'image/png, image/jpeg, image/webp;q=0.9, */*;q=0.1', 'user-agent': 'uitars-server' },
        });
      } catch (err) {
        throw networkFailure(err, combined, signal, policy, param, url);
      }
      if (res.statusCode >= 300 && res.statusCode < 400 && res.headers.location !== undefined) {
        await res.body.dump().catch(() => {});
        if (redirects >= policy.maxRedirects) {
          throw refuse(param, 'remote_image_too_many_redirects', `the image URL redirected more than ${policy.maxRedirects} time(s)`);
        }
        const location = Array.isArray(res.headers.location) ? res.headers.location[0]! : res.headers.location;
        let next: string;
        try {
          next = new URL(location, url).href;
        } catch {
          throw refuse(param, 'remote_image_fetch_failed', 'the image URL redirected to an invalid URL');
        }
        url = checkUrl(next, policy, param);
        continue;
      }
      if (res.statusCode < 200 || res.statusCode >= 300) {
        await res.body.dump().catch(() => {});
        throw refuse(param, 'remote_image_fetch_failed', `fetching the image from ${url.hostname} answered HTTP ${res.statusCode}`);
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > policy.maxBytes) {
        res.body.destroy();
        throw refuse(param, 'remote_image_too_large', `the image is ${declared} bytes, the limit is ${policy.maxBytes}`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      try {
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          size += chunk.length;
          if (size > policy.maxBytes) {
            res.body.destroy();
            throw refuse(param, 'remote_image_too_large', `the image is larger than the limit of ${policy.maxBytes} bytes`);
          }
          chunks.push(chunk);
        }
      } catch (err) {
        if (err instanceof ApiError) throw err;
        throw networkFailure(err, combined, signal, policy, param, url);
      }
      return Buffer.concat(chunks, size);
    } finally {
      void agent.destroy().catch(() => {});
    }
  }
}

function networkFailure(err: unknown, combined: AbortSignal, signal: AbortSignal | undefined, policy: RemoteImagePolicy, param: string, url: URL): ApiError {
  if (signal?.aborted) return invalidRequest('the client went away', param, 'client_closed'); // nobody reads it
  const code = (err as { code?: unknown } | null)?.code;
  if (combined.aborted || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return refuse(param, 'remote_image_timeout', `fetching the image from ${url.hostname} took longer than ${policy.timeoutMs} ms`);
  }
  return refuse(param, 'remote_image_fetch_failed', `fetching the image from ${url.hostname} failed: ${describeNetworkError(err)}`);
}

/** DNS has no signal: race it against the deadline. */
async function withDeadline<T>(work: Promise<T>, signal: AbortSignal, policy: RemoteImagePolicy, param: string): Promise<T> {
  if (signal.aborted) throw refuse(param, 'remote_image_timeout', `fetching the image took longer than ${policy.timeoutMs} ms`);
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(refuse(param, 'remote_image_timeout', `fetching the image took longer than ${policy.timeoutMs} ms`));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort!);
  }
}
