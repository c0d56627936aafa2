/**
 * The OSWorld in-VM HTTP protocol (desktop_env/server/main.py, Flask, port 5000), as typed route and shape
 * definitions. One source of truth for our env server (providers/local/env-server.ts) and the client
 * (env-client.ts). The client speaks it to our local envs or to a real OSWorld VM.
 *
 * Body kinds: `json` (application/json), `form` (application/x-www-form-urlencoded), `multipart`
 * (multipart/form-data), `none`. Response kinds: `json`, `text` (text/html in Flask), `png`, `binary`
 * (an attachment).
 *
 * Our additions (not in OSWorld's server, which has no auth): a per-env token, sent in the
 * `X-Env-Token` header (or `Authorization: Bearer <token>`); 401 without it.
 */

export type HttpMethod = 'GET' | 'POST';
export type BodyKind = 'none' | 'json' | 'form' | 'multipart';
export type ResponseKind = 'json' | 'text' | 'png' | 'binary';

export interface RouteDef {
  readonly method: HttpMethod;
  readonly path: string;
  readonly body: BodyKind;
  readonly response: ResponseKind;
}

export const TOKEN_HEADER = 'x-env-token';

/** Every route of the protocol (ARPO's OSWorld fork; the newer upstream extras are not part of it). */
export const ROUTES = {
  execute: { method: 'POST', path: '/execute', body: 'json', response: 'json' },
  setupExecute: { method: 'POST', path: '/setup/execute', body: 'json', response: 'json' },
  setupLaunch: { method: 'POST', path: '/setup/launch', body: 'json', response: 'text' },
  screenshot: { method: 'GET', path: '/screenshot', body: 'none', response: 'png' },
  terminal: { method: 'GET', path: '/terminal', body: 'none', response: 'json' },
  accessibility: { method: 'GET', path: '/accessibility', body: 'none', response: 'json' },
  screenSize: { method: 'POST', path: '/screen_size', body: 'none', response: 'json' },
  windowSize: { method: 'POST', path: '/window_size', body: 'form', response: 'json' },
  desktopPath: { method: 'POST', path: '/desktop_path', body: 'none', response: 'json' },
  wallpaper: { method: 'POST', path: '/wallpaper', body: 'none', response: 'binary' },
  listDirectory: { method: 'POST', path: '/list_directory', body: 'json', response: 'json' },
  file: { method: 'POST', path: '/file', body: 'form', response: 'binary' },
  setupUpload: { method: 'POST', path: '/setup/upload', body: 'multipart', response: 'text' },
  platform: { method: 'GET', path: '/platform', body: 'none', response: 'text' },
  cursorPosition: { method: 'GET', path: '/cursor_position', body: 'none', response: 'json' },
  setupChangeWallpaper: { method: 'POST', path: '/setup/change_wallpaper', body: 'json', response: 'text' },
  setupDownloadFile: { method: 'POST', path: '/setup/download_file', body: 'json', response: 'text' },
  setupOpenFile: { method: 'POST', path: '/setup/open_file', body: 'json', response: 'text' },
  setupActivateWindow: { method: 'POST', path: '/setup/activate_window', body: 'json', response: 'text' },
  setupCloseWindow: { method: 'POST', path: '/setup/close_window', body: 'json', response: 'text' },
  startRecording: { method: 'POST', path: '/start_recording', body: 'none', response: 'json' },
  endRecording: { method: 'POST', path: '/end_recording', body: 'none', response: 'binary' },
} as const satisfies Record<string, RouteDef>;

export type RouteName = keyof typeof ROUTES;

// ---- request shapes ------------------------------------------------------------------------------

/** POST /execute and /setup/execute. A string without `shell` is split like shlex.split; `~/` args expand. */
export interface ExecuteRequest {
  command: string | string[];
  shell?: boolean;
}
/** POST /setup/launch: started, not waited for. */
export interface LaunchRequest {
  command: string | string[];
  shell?: boolean;
}
/** POST /window_size (form). */
export interface WindowSizeRequest {
  app_class_name: string;
}
/** POST /list_directory (JSON). */
export interface ListDirectoryRequest {
  path: string;
}
/** POST /file (form). */
export interface FileRequest {
  file_path: string;
}
/** POST /setup/upload (multipart): field `file_path`, file `file_data`. */
export interface UploadRequest {
  file_path: string;
  file_data: Uint8Array;
}
export interface PathRequest {
  path: string;
}
export interface DownloadFileRequest {
  url: string;
  path: string;
}
export interface OpenFileRequest {
  path: string;
  /** newer upstream: window title to wait for */
  window_name?: string;
  /** newer upstream: how long to wait for the window */
  timeout_seconds?: number;
}
export interface WindowRequest {
  window_name: string;
  strict?: boolean;
  by_class?: boolean;
}

// ---- response shapes -----------------------------------------------------------------------------

export interface ExecuteSuccess {
  status: 'success';
  output: string;
  error: string;
  returncode: number;
}
export interface StatusError {
  status: 'error';
  message: string;
}
export type ExecuteResponse = ExecuteSuccess | StatusError;

/** 4xx bodies of /file, /list_directory, /window_size, /setup/upload, /desktop_path. */
export interface ErrorBody {
  error: string;
}

export interface TerminalResponse {
  output: string | null;
  status: 'success';
}
export interface AccessibilityResponse {
  /** XML string: `<desktop-frame>` with one child per AT-SPI application (namespaces below). */
  AT: string | null;
}
export interface SizeResponse {
  width: number;
  height: number;
}
export interface DesktopPathResponse {
  desktop_path: string;
}
export type DirectoryNode =
  | { type: 'directory'; name: string; children: DirectoryNode[] }
  | { type: 'file'; name: string }
  | { error: string };
export interface ListDirectoryResponse {
  directory_tree: DirectoryNode;
}
/** GET /cursor_position: `[x, y]`. */
export type CursorPositionResponse = [number, number];
export interface RecordingResponse {
  status: 'success' | 'error';
  message: string;
}

/** The namespaces of the /accessibility XML (OSWorld, Ubuntu). */
export const A11Y_NS = {
  st: 'https://accessibility.ubuntu.example.org/ns/state',
  attr: 'https://accessibility.ubuntu.example.org/ns/attributes',
  cp: 'https://accessibility.ubuntu.example.org/ns/component',
  doc: 'https://accessibility.ubuntu.example.org/ns/document',
  docattr: 'https://accessibility.ubuntu.example.org/ns/document/attributes',
  txt: 'https://accessibility.ubuntu.example.org/ns/text',
  val: 'https://accessibility.ubuntu.example.org/ns/value',
  act: 'https://accessibility.ubuntu.example.org/ns/action',
} as const;

/** What OSWorld's PythonController prefixes to agent code (`execute_python_command`). */
export const PYTHON_COMMAND_PREFIX = 'import pyautogui; import time; pyautogui.FAILSAFE = False; ';

/** The fixed in-VM timeout of /execute (subprocess.run(timeout=120)). */
export const EXECUTE_TIMEOUT_S = 120;

/** OSWorld's default ports inside the VM (the docker provider maps them to free host ports). */
export const DEFAULT_PORTS = { server: 5000, chromium: 9222, vnc: 8006, vlc: 8080 } as const;

/** Splits a command string like Python's shlex.split (POSIX mode). Throws on an unclosed quote. */
export function shlexSplit(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let i = 0;
  while (i < s.length) {
    const c = s[i] as string;
    if (c === '\\') {
      const n = s[i + 1];
      if (n === undefined) throw new Error('No escaped character');
      cur += n;
      inWord = true;
      i += 2;
      continue;
    }
    if (c === "'") {
      const end = s.indexOf("'", i + 1);
      if (end < 0) throw new Error('No closing quotation');
      cur += s.slice(i + 1, end);
      inWord = true;
      i = end + 1;
      continue;
    }
    if (c === '"') {
      i++;
      let closed = false;
      while (i < s.length) {
        const d = s[i] as string;
        if (d === '"') {
          closed = true;
          i++;
          break;
        }
        if (d === '\\' && i + 1 < s.length && '\\"$`\n'.includes(s[i + 1] as string)) {
          cur += s[i + 1];
          i += 2;
          continue;
        }
        cur += d;
        i++;
      }
      if (!closed) throw new Error('No closing quotation');
      inWord = true;
      continue;
    }
    if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
      i++;
      continue;
    }
    cur += c;
    inWord = true;
    i++;
  }
  if (inWord) out.push(cur);
  return out;
}
