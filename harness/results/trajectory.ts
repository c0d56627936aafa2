/**
 * Reading a task's traj.jsonl for people: each line as a step (action, the model's response and
 * its thought, screenshot file, model-call timing), the pointer actions in its pyautogui code as
 * marks at screen pixels (click, double/right click, drag, scroll, hover), and a short description
 * of an action for tables. Reads our lines (`prediction`, `model_calls`, ...) and OSWorld's / ARPO's
 * (`response`); a torn last line (a killed run) is skipped.
 */
import fs from 'node:fs';
import path from 'node:path';

export type { ModelCall } from '../agent/agent.ts';
import type { ModelCall } from '../agent/agent.ts';

/** One traj.jsonl line that executed an action (step_num >= 1). */
export interface TrajStep {
  /** step_num of the line: the model call that produced the action (1-based) */
  stepNum: number;
  /** position among the task's action lines (0-based) */
  index: number;
  /** pyautogui code, or DONE / FAIL / WAIT */
  action: string;
  /** the model's whole response ("client error" when the agent gave up) */
  response: string;
  thought: string;
  /** what the model wrote after "Action:" */
  modelAction: string;
  /** screenshot after the action (file name in the task folder), null when the line names none */
  screenshot: string | null;
  timestamp: string | null;
  done: boolean;
  modelCalls: ModelCall[];
  warnings: string[];
  gaveUp: string | null;
  loop: number | null;
}

export interface Trajectory {
  instruction: string | null;
  /** the screenshot after reset (step_reset_*.png), null when absent */
  resetScreenshot: string | null;
  steps: TrajStep[];
  /** the `Error` line of a task that ended without a result */
  error: string | null;
  /** lines that are not JSON (a torn last line) */
  skipped: number;
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

function modelCalls(v: unknown): ModelCall[] {
  if (!Array.isArray(v)) return [];
  return v
    .filter((c): c is Record<string, unknown> => !!c && typeof c === 'object')
    .map((c) => ({
      latencyMs: num(c.latencyMs),
      promptTokens: num(c.promptTokens),
      completionTokens: num(c.completionTokens),
      ...(typeof c.error === 'string' ? { error: c.error } : {}),
      ...(typeof c.retries === 'number' && c.retries ? { retries: c.retries, retryWaitMs: num(c.retryWaitMs) } : {}),
    }));
}

/** UI-TARS's thought (Thought:, or Reflection: + Action_Summary:) and what follows "Action:". */
export function splitResponse(response: string): { thought: string; modelAction: string } {
  const text = response.trim();
  const at = text.lastIndexOf('Action:');
  const head = at < 0 ? text : text.slice(0, at);
  const modelAction = at < 0 ? '' : text.slice(at + 'Action:'.length).trim();
  const m = /(?:Thought|Action_Summary):\s*([\s\S]*)$/.exec(head);
  const reflection = /^Reflection:\s*([\s\S]*?)(?:Action_Summary:|$)/.exec(head);
  let thought = m ? m[1]!.trim() : at < 0 ? '' : head.trim();
  if (reflection && reflection[1]!.trim()) thought = `${reflection[1]!.trim()}\n${thought}`.trim();
  return { thought, modelAction };
}

/** A task folder's traj.jsonl; an empty trajectory when the file is absent. */
export function readTrajectory(taskDir: string): Trajectory {
  const out: Trajectory = { instruction: null, resetScreenshot: null, steps: [], error: null, skipped: 0 };
  let text: string;
  try {
    text = fs.readFileSync(path.join(taskDir, 'traj.jsonl'), 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let e: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(line);
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
      e = parsed as Record<string, unknown>;
    } catch {
      out.skipped++;
      continue;
    }
    if (typeof e.Error === 'string') {
      out.error = e.Error;
      continue;
    }
    const action = str(e.action);
    if (e.step_num === 0 || action === 'reset') {
      out.instruction = str(e.instruction) ?? out.instruction;
      out.resetScreenshot = str(e.screenshot_file) ?? out.resetScreenshot;
      continue;
    }
    if (action === null) continue;
    const response = str(e.prediction) ?? str(e.response) ?? '';
    const info = e.info && typeof e.info === 'object' ? (e.info as Record<string, unknown>) : {};
    const loop = e.loop && typeof e.loop === 'object' ? num((e.loop as Record<string, unknown>).repeats) : 0;
    out.steps.push({
      stepNum: num(e.step_num),
      index: out.steps.length,
      action,
      response,
      ...splitResponse(response),
      screenshot: str(e.screenshot_file),
      timestamp: str(e.action_timestamp),
      done: e.done === true || info.done === true || info.fail === true,
      modelCalls: modelCalls(e.model_calls),
      warnings: Array.isArray(e.warnings) ? e.warnings.filter((w): w is string => typeof w === 'string') : [],
      gaveUp: str(e.gave_up),
      loop: loop || null,
    });
  }
  // OSWorld's own trajectories have no reset line: the screenshot before step 1 is then unknown.
  if (!out.resetScreenshot) {
    try {
      out.resetScreenshot = fs.readdirSync(taskDir).find((f) => /^step_reset_.*\.png$/.test(f)) ?? null;
    } catch {
      /* no folder */
    }
  }
  return out;
}

// ---- pyautogui code -> marks ---------------------------------------------------------------------

export type MarkKind = 'click' | 'double' | 'triple' | 'right' | 'middle' | 'move' | 'drag' | 'scroll' | 'down' | 'up';

/** A pointer action at screen pixels; a drag has an end point, a scroll a direction. */
export interface Mark {
  kind: MarkKind;
  x: number;
  y: number;
  x2?: number;
  y2?: number;
  /** scroll: up / down / left / right */
  direction?: string;
}

interface Call {
  fn: string;
  positional: string[];
  kw: Record<string, string>;
}

/** Splits an argument list at top-level commas (strings and brackets kept whole). */
function splitArgs(src: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let cur = '';
  for (let i = 0; i < src.length; i++) {
    const ch = src[i]!;
    if (quote) {
      cur += ch;
      if (ch === '\\' && i + 1 < src.length) cur += src[++i];
      else if (ch === quote) quote = null;
      continue;
    }
    if (ch === "'" || ch === '"') quote = ch;
    else if ('([{'.includes(ch)) depth++;
    else if (')]}'.includes(ch)) depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else {
      cur += ch;
    }
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/** The pyautogui calls of one code string, in order (comments, imports and other lines skipped). */
export function pyautoguiCalls(code: string): Call[] {
  const calls: Call[] = [];
  for (const m of code.matchAll(/^\s*pyautogui\.(\w+)\(([\s\S]*?)\)\s*$/gm)) {
    const positional: string[] = [];
    const kw: Record<string, string> = {};
    for (const a of splitArgs(m[2]!)) {
      const k = /^([A-Za-z_]\w*)\s*=\s*([\s\S]*)$/.exec(a);
      if (k) kw[k[1]!] = k[2]!.trim();
      else positional.push(a);
    }
    calls.push({ fn: m[1]!, positional, kw });
  }
  return calls;
}

const pyNum = (s: string | undefined): number | null => {
  if (s === undefined) return null;
  const n = Number(s.trim());
  return Number.isFinite(n) ? n : null;
};
const pyStr = (s: string | undefined): string | null => {
  if (s === undefined) return null;
  const m = /^(['"])([\s\S]*)\1$/.exec(s.trim());
  if (!m) return null;
  return m[2]!.replace(/\\(n|t|r|\\|'|")/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : c === 'r' ? '\r' : c));
};

/** (x, y) of a call: the first two positional numbers, or x= / y= (a tuple as the first argument too). */
function point(c: Call): [number, number] | null {
  const first = c.positional[0];
  const tuple = first ? /^[([]\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*[)\]]$/.exec(first) : null;
  if (tuple) return [Number(tuple[1]), Number(tuple[2])];
  const x = pyNum(c.kw.x) ?? pyNum(c.positional[0]);
  const y = pyNum(c.kw.y) ?? pyNum(c.positional[1]);
  return x !== null && y !== null ? [x, y] : null;
}

/** The pointer actions of a pyautogui code string as marks at screen pixels. */
export function actionMarks(code: string): Mark[] {
  const marks: Mark[] = [];
  let cursor: [number, number] | null = null;
  let pendingMove: Mark | null = null;
  const flushMove = (): void => {
    if (pendingMove) marks.push(pendingMove);
    pendingMove = null;
  };
  for (const c of pyautoguiCalls(code)) {
    const fn = c.fn;
    if (fn === 'moveTo') {
      const p = point(c);
      if (!p) continue;
      flushMove();
      cursor = p;
      pendingMove = { kind: 'move', x: p[0], y: p[1] };
      continue;
    }
    if (fn === 'dragTo') {
      const p = point(c);
      if (!p) continue;
      const from = cursor ?? p;
      pendingMove = null;
      marks.push({ kind: 'drag', x: from[0], y: from[1], x2: p[0], y2: p[1] });
      cursor = p;
      continue;
    }
    if (fn === 'mouseDown' || fn === 'mouseUp') {
      const p: [number, number] | null = point(c) ?? cursor;
      if (!p) continue;
      if (fn === 'mouseUp' && marks.at(-1)?.kind === 'down') {
        const d = marks.pop()!;
        marks.push({ kind: 'drag', x: d.x, y: d.y, x2: p[0], y2: p[1] });
      } else {
        pendingMove = null;
        marks.push({ kind: fn === 'mouseDown' ? 'down' : 'up', x: p[0], y: p[1] });
      }
      cursor = p;
      continue;
    }
    const clickKind: Record<string, MarkKind> = { click: 'click', leftClick: 'click', doubleClick: 'double', tripleClick: 'triple', rightClick: 'right', middleClick: 'middle' };
    if (fn in clickKind) {
      const p: [number, number] | null = point(c) ?? cursor;
      if (!p) continue;
      pendingMove = null;
      let kind = clickKind[fn]!;
      const button = pyStr(c.kw.button);
      if (kind === 'click' && button === 'right') kind = 'right';
      if (kind === 'click' && button === 'middle') kind = 'middle';
      const clicks = pyNum(c.kw.clicks);
      if (kind === 'click' && clicks === 2) kind = 'double';
      if (kind === 'click' && clicks === 3) kind = 'triple';
      marks.push({ kind, x: p[0], y: p[1] });
      cursor = p;
      continue;
    }
    if (fn === 'scroll' || fn === 'vscroll' || fn === 'hscroll') {
      const amount = pyNum(c.positional[0] ?? c.kw.clicks) ?? 0;
      const x = pyNum(c.kw.x) ?? pyNum(c.positional[1]);
      const y = pyNum(c.kw.y) ?? pyNum(c.positional[2]);
      const at: [number, number] | null = x !== null && y !== null ? [x, y] : cursor;
      if (!at) continue;
      pendingMove = null;
      const direction = fn === 'hscroll' ? (amount < 0 ? 'left' : 'right') : amount < 0 ? 'down' : 'up';
      marks.push({ kind: 'scroll', x: at[0], y: at[1], direction });
    }
  }
  flushMove();
  return marks;
}

const r1 = (n: number): string => String(Math.round(n * 10) / 10);
const clip = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** A short human description of an action: "click (960, 540)", "type 'hello'", "hotkey ctrl+s", "DONE". */
export function describeAction(code: string): string {
  const a = code.trim();
  if (a === 'DONE' || a === 'FAIL' || a === 'WAIT') return a;
  const parts: string[] = [];
  let lastMove: string | null = null;
  for (const c of pyautoguiCalls(a)) {
    const p = point(c);
    const at = p ? ` (${r1(p[0])}, ${r1(p[1])})` : '';
    switch (c.fn) {
      case 'click':
      case 'leftClick': {
        const button = pyStr(c.kw.button);
        parts.push(`${button === 'right' ? 'right-click' : button === 'middle' ? 'middle-click' : 'click'}${at}`);
        break;
      }
      case 'doubleClick':
        parts.push(`double-click${at}`);
        break;
      case 'tripleClick':
        parts.push(`triple-click${at}`);
        break;
      case 'rightClick':
        parts.push(`right-click${at}`);
        break;
      case 'moveTo':
        lastMove = `move${at}`;
        parts.push(lastMove);
        break;
      case 'dragTo':
        if (lastMove && parts.at(-1) === lastMove) parts.pop();
        parts.push(`drag${lastMove ? lastMove.slice(4) : ''} → ${at.trim()}`);
        break;
      case 'scroll':
      case 'vscroll':
      case 'hscroll': {
        const n = pyNum(c.positional[0]) ?? 0;
        const dir = c.fn === 'hscroll' ? (n < 0 ? 'left' : 'right') : n < 0 ? 'down' : 'up';
        const x = pyNum(c.kw.x);
        const y = pyNum(c.kw.y);
        parts.push(`scroll ${dir} ${Math.abs(n)}${x !== null && y !== null ? ` at (${r1(x)}, ${r1(y)})` : ''}`);
        break;
      }
      case 'write':
      case 'typewrite':
        parts.push(`type ${JSON.stringify(clip(pyStr(c.positional[0] ?? c.kw.message) ?? c.positional[0] ?? '', 60))}`);
        break;
      case 'press':
        parts.push(`press ${pyStr(c.positional[0]) ?? c.positional[0] ?? ''}`);
        break;
      case 'hotkey':
        parts.push(`hotkey ${c.positional.map((k) => pyStr(k) ?? k).join('+')}`);
        break;
      case 'keyDown':
      case 'keyUp':
        parts.push(`${c.fn === 'keyDown' ? 'key down' : 'key up'} ${pyStr(c.positional[0]) ?? ''}`);
        break;
      default:
        parts.push(`${c.fn}(${clip([...c.positional, ...Object.entries(c.kw).map(([k, v]) => `${k}=${v}`)].join(', '), 40)})`);
    }
  }
  if (parts.length) return parts.join('; ');
  const line = a.split('\n').map((l) => l.trim()).find((l) => l && !l.startsWith('#') && !/^import\b/.test(l));
  return clip(line ?? a, 80);
}

/** The action without comments, imports and pauses, 640.0 written 640: what to compare between two runs. */
export function normaliseAction(code: string): string {
  return code
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#') && !/^import\s/.test(l) && !/^time\.sleep\(/.test(l))
    .map((l) => l.replace(/(\d)\.0+(?![\d.])/g, '$1'))
    .join('\n');
}

/** Width and height of a PNG from its IHDR chunk (the first 24 bytes of the file), null if not a PNG. */
export function pngFileSize(file: string): { width: number; height: number } | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const b = Buffer.alloc(24);
    if (fs.readSync(fd, b, 0, 24, 0) < 24 || b.readUInt32BE(12) !== 0x49484452) return null;
    return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
  } finally {
    fs.closeSync(fd);
  }
}
