/**
 * Client of the OSWorld in-VM HTTP protocol (vm-protocol.ts), over undici. Talks to our local env servers
 * or to a real OSWorld VM (then pass no token). One typed method per route.
 *
 * Errors: a non-2xx answer throws EnvHttpError (status + body text); a connection failure is retried
 * `retries` times `retryDelayMs` apart (nothing reached the server, so a retry is safe), then thrown.
 * Like OSWorld's PythonController, getFile() returns null on 404.
 */
import { request, FormData } from 'undici';
import type { Dispatcher } from 'undici';
import {
  ROUTES,
  TOKEN_HEADER,
  PYTHON_COMMAND_PREFIX,
  EXECUTE_TIMEOUT_S,
} from './vm-protocol.ts';
import type {
  RouteName,
  ExecuteRequest,
  ExecuteResponse,
  TerminalResponse,
  AccessibilityResponse,
  SizeResponse,
  DesktopPathResponse,
  ListDirectoryResponse,
  CursorPositionResponse,
  RecordingResponse,
  WindowRequest,
  OpenFileRequest,
} from './vm-protocol.ts';

export class EnvHttpError extends Error {
  readonly status: number;
  readonly body: string;
  readonly route: string;
  constructor(route: string, status: number, body: string) {
    super(`${route} -> HTTP ${status}: ${body.slice(0, 500)}`);
    this.name = 'EnvHttpError';
    this.status = status;
    this.body = body;
    this.route = route;
  }
}

export interface EnvClientOptions {
  /** per-env token of our env servers; null/undefined for a real OSWorld VM */
  token?: string | null;
  /** default request timeout (ms); /execute uses 120 s + margin */
  timeoutMs?: number;
  /** retries after a connection error (nothing was sent); default 2 */
  retries?: number;
  retryDelayMs?: number;
  dispatcher?: Dispatcher;
}

interface CallOpts {
  json?: unknown;
  form?: Record<string, string>;
  multipart?: FormData;
  timeoutMs?: number;
  /** statuses that return instead of throwing */
  okStatuses?: number[];
}

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

const RETRYABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT']);

export class EnvClient {
  readonly baseUrl: string;
  readonly token: string | null;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly dispatcher: Dispatcher | undefined;

  constructor(baseUrl: string, opts: EnvClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.token = opts.token ?? null;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.retries = opts.retries ?? 2;
    this.retryDelayMs = opts.retryDelayMs ?? 500;
    this.dispatcher = opts.dispatcher;
  }

  /** Low-level call of a named route. */
  async call(name: RouteName, opts: CallOpts = {}): Promise<RawResponse> {
    const def = ROUTES[name];
    const headers: Record<string, string> = {};
    if (this.token) headers[TOKEN_HEADER] = this.token;
    let body: string | FormData | undefined;
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    } else if (opts.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(opts.form).toString();
    } else if (opts.multipart) {
      body = opts.multipart;
    }
    const timeout = opts.timeoutMs ?? this.timeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await request(this.baseUrl + def.path, {
          method: def.method,
          headers,
          body,
          headersTimeout: timeout,
          bodyTimeout: timeout,
          ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
        });
        const buf = Buffer.from(await res.body.arrayBuffer());
        const out: RawResponse = { status: res.statusCode, headers: res.headers, body: buf };
        if ((res.statusCode < 200 || res.statusCode >= 300) && !opts.okStatuses?.includes(res.statusCode)) {
          throw new EnvHttpError(def.path, res.statusCode, buf.toString('utf8'));
        }
        return out;
      } catch (e) {
        const code = (e as { code?: string }).code ?? '';
        if (attempt < this.retries && RETRYABLE.has(code) && !(body instanceof FormData)) {
          await new Promise((r) => setTimeout(r, this.retryDelayMs));
          continue;
        }
        throw e;
      }
    }
  }

  private async json<T>(name: RouteName, opts: CallOpts = {}): Promise<T> {
    const r = await this.call(name, opts);
    return JSON.parse(r.body.toString('utf8')) as T;
  }

  private async text(name: RouteName, opts: CallOpts = {}): Promise<string> {
    return (await this.call(name, opts)).body.toString('utf8');
  }

  // ---- routes ------------------------------------------------------------------------------------

  /** POST /execute. 200 answers (also non-zero returncode) resolve; a 500 {status:'error'} resolves too. */
  async execute(command: string | string[], shell = false): Promise<ExecuteResponse> {
    const req: ExecuteRequest = { command, shell };
    return this.json<ExecuteResponse>('execute', {
      json: req,
      timeoutMs: (EXECUTE_TIMEOUT_S + 30) * 1000,
      okStatuses: [500],
    });
  }

  /** OSWorld's PythonController.execute_python_command: `python -c "<prefix> + code"`. */
  async executePython(code: string): Promise<ExecuteResponse> {
    return this.execute(['python', '-c', PYTHON_COMMAND_PREFIX + code], false);
  }

  /** POST /setup/execute (same handler as /execute). */
  async setupExecute(command: string | string[], shell = false): Promise<ExecuteResponse> {
    return this.json<ExecuteResponse>('setupExecute', {
      json: { command, shell },
      timeoutMs: (EXECUTE_TIMEOUT_S + 30) * 1000,
      okStatuses: [500],
    });
  }

  /** POST /setup/launch: starts the command, does not wait. */
  async launch(command: string | string[], shell = false): Promise<string> {
    return this.text('setupLaunch', { json: { command, shell } });
  }

  /** GET /screenshot: PNG bytes (the cursor is drawn in). */
  async screenshot(): Promise<Buffer> {
    return (await this.call('screenshot')).body;
  }

  /** GET /accessibility: the XML string (`AT`). */
  async accessibility(timeoutMs = 60_000): Promise<string | null> {
    return (await this.json<AccessibilityResponse>('accessibility', { timeoutMs })).AT;
  }

  /** GET /terminal: the focused terminal's text, or null. */
  async terminal(): Promise<string | null> {
    return (await this.json<TerminalResponse>('terminal')).output;
  }

  async screenSize(): Promise<{ width: number; height: number }> {
    return this.json<SizeResponse>('screenSize');
  }

  async windowSize(appClassName: string): Promise<{ width: number; height: number } | null> {
    const r = await this.call('windowSize', { form: { app_class_name: appClassName }, okStatuses: [404] });
    if (r.status === 404) return null;
    return JSON.parse(r.body.toString('utf8')) as SizeResponse;
  }

  async desktopPath(): Promise<string> {
    return (await this.json<DesktopPathResponse>('desktopPath')).desktop_path;
  }

  /** POST /wallpaper: the wallpaper image bytes, or null when none is set (404). */
  async wallpaper(): Promise<Buffer | null> {
    const r = await this.call('wallpaper', { okStatuses: [404] });
    return r.status === 404 ? null : r.body;
  }

  async listDirectory(path: string): Promise<ListDirectoryResponse['directory_tree']> {
    return (await this.json<ListDirectoryResponse>('listDirectory', { json: { path } })).directory_tree;
  }

  /** POST /file: the file's bytes; null when it does not exist (404), like PythonController.get_file. */
  async getFile(path: string): Promise<Buffer | null> {
    const r = await this.call('file', { form: { file_path: path }, okStatuses: [404] });
    return r.status === 404 ? null : r.body;
  }

  /** POST /setup/upload (multipart file_path + file_data). */
  async upload(path: string, data: Uint8Array, filename = 'upload.bin'): Promise<string> {
    const fd = new FormData();
    fd.append('file_path', path);
    fd.append('file_data', new Blob([data]), filename);
    return this.text('setupUpload', { multipart: fd, timeoutMs: 300_000 });
  }

  async platform(): Promise<string> {
    return this.text('platform');
  }

  async cursorPosition(): Promise<[number, number]> {
    return this.json<CursorPositionResponse>('cursorPosition');
  }

  async changeWallpaper(path: string): Promise<string> {
    return this.text('setupChangeWallpaper', { json: { path } });
  }

  /** POST /setup/download_file: the env itself downloads url to path. */
  async downloadFile(url: string, path: string): Promise<string> {
    return this.text('setupDownloadFile', { json: { url, path }, timeoutMs: 600_000 });
  }

  /** POST /setup/open_file: opens the file with its app and waits for a window whose title names it. */
  async openFile(path: string, opts: Omit<OpenFileRequest, 'path'> = {}): Promise<string> {
    const waitS = opts.timeout_seconds ?? 60;
    return this.text('setupOpenFile', { json: { path, ...opts }, timeoutMs: (waitS + 30) * 1000 });
  }

  async activateWindow(windowName: string, opts: Omit<WindowRequest, 'window_name'> = {}): Promise<string> {
    return this.text('setupActivateWindow', { json: { window_name: windowName, ...opts } });
  }

  async closeWindow(windowName: string, opts: Omit<WindowRequest, 'window_name'> = {}): Promise<string> {
    return this.text('setupCloseWindow', { json: { window_name: windowName, ...opts } });
  }

  async startRecording(): Promise<RecordingResponse> {
    return this.json<RecordingResponse>('startRecording');
  }

  /** POST /end_recording: the mp4 bytes. */
  async endRecording(): Promise<Buffer> {
    return (await this.call('endRecording', { timeoutMs: 120_000 })).body;
  }

  /** True when GET /screenshot answers 200 (what OSWorld's docker provider polls for readiness). */
  async ready(timeoutMs = 5000): Promise<boolean> {
    try {
      const r = await this.call('screenshot', { timeoutMs });
      return r.status === 200;
    } catch {
      return false;
    }
  }
}
