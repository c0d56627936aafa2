/**
 * UI-TARS's output grammar:
 *
 *   Thought: <free text>
 *   Action: click(start_box='(x1,y1)')
 *
 * Several actions may follow "Action:", separated by blank lines. Each is a call with keyword
 * arguments whose values are quoted strings. Parsing follows ARPO's agent, with its crash
 * cases fixed: an apostrophe inside finished(content=...) or type(content=...) is taken as
 * text (everything up to the call's closing quote), and a multi-line content stays one action.
 */
export type ActionType =
  | 'click'
  | 'left_single'
  | 'left_double'
  | 'right_single'
  | 'hover'
  | 'drag'
  | 'select'
  | 'hotkey'
  | 'press'
  | 'keydown'
  | 'keyup'
  | 'type'
  | 'scroll'
  | 'wait'
  | 'finished'
  | 'call_user'
  | 'error_env';

const KNOWN = new Set<string>([
  'click', 'left_single', 'left_double', 'right_single', 'hover', 'drag', 'select', 'hotkey', 'press',
  'keydown', 'keyup', 'type', 'scroll', 'wait', 'finished', 'call_user', 'error_env',
]);

/** A box as fractions of the screen: [x1, y1, x2, y2] (a point is x1=x2, y1=y2). */
export type Box = [number, number, number, number];

export interface ParsedAction {
  type: ActionType;
  /** Raw keyword arguments as the model wrote them (unescaped). */
  args: Record<string, string>;
  startBox?: Box;
  endBox?: Box;
  text: string;
}

export interface ParsedResponse {
  thought: string;
  reflection: string | null;
  actions: ParsedAction[];
}

/**
 * How the model writes coordinates: UI-TARS v1 / UI-TARS-2B (Qwen2-VL) use 0-1000 relative
 * coordinates; UI-TARS-1.5 (Qwen2.5-VL) uses absolute pixels in the smart-resized screenshot.
 */
export type CoordinateMode = { kind: 'relative'; factor: number } | { kind: 'absolute'; width: number; height: number };

export class ResponseParseError extends Error {
  override name = 'ResponseParseError';
}

export function parseResponse(response: string, coords: CoordinateMode): ParsedResponse {
  const text = response.trim();
  const { thought, reflection } = extractThought(text);
  const at = text.lastIndexOf('Action:');
  if (at < 0) throw new ResponseParseError('no "Action:" in the response');
  const pieces = splitActions(text.slice(at + 'Action:'.length));
  if (pieces.length === 0) throw new ResponseParseError('empty action');
  return { thought, reflection, actions: pieces.map((p) => parseAction(p, coords)) };
}

/**
 * Actions are separated by blank lines; a blank line inside typed text does not start a new
 * action unless what follows is itself an action call.
 */
function splitActions(actionText: string): string[] {
  const pieces: string[] = [];
  for (const chunk of actionText.split('\n\n')) {
    const call = /^\s*([A-Za-z_]\w*)\s*\(/.exec(chunk);
    if (pieces.length > 0 && !(call && KNOWN.has(call[1]!))) pieces[pieces.length - 1] += `\n\n${chunk}`;
    else pieces.push(chunk);
  }
  return pieces.map((p) => p.trim()).filter((p) => p.length > 0);
}

function extractThought(text: string): { thought: string; reflection: string | null } {
  if (text.startsWith('Reflection:')) {
    const m = /Reflection:\s*([\s\S]+?)Action_Summary:\s*([\s\S]+?)(?=\s*Action:|$)/.exec(text);
    if (m) return { reflection: m[1]!.trim(), thought: m[2]!.trim() };
  }
  if (text.startsWith('Action_Summary:')) {
    const m = /Action_Summary:\s*([\s\S]+?)(?=\s*Action:|$)/.exec(text);
    if (m) return { reflection: null, thought: m[1]!.trim() };
  }
  const m = /Thought:\s*([\s\S]+?)(?=\s*Action:|$)/.exec(text);
  return { reflection: null, thought: m ? m[1]!.trim() : '' };
}

export function parseAction(piece: string, coords: CoordinateMode): ParsedAction {
  const m = /^([A-Za-z_]\w*)\s*\(([\s\S]*)\)\s*$/.exec(piece.trim());
  if (!m) throw new ResponseParseError(`not an action call: ${JSON.stringify(piece.slice(0, 80))}`);
  const name = m[1]!;
  if (!KNOWN.has(name)) throw new ResponseParseError(`unknown action "${name}"`);
  const args = parseKeywordArgs(name, m[2]!);
  const action: ParsedAction = { type: name as ActionType, args, text: piece };
  if (args.start_box !== undefined) action.startBox = parseBox(args.start_box, coords);
  if (args.end_box !== undefined) action.endBox = parseBox(args.end_box, coords);
  return action;
}

/**
 * Keyword arguments with quoted values. For content-carrying calls (type, finished) the one
 * `content` argument runs to the last quote of the call, so quotes inside it need no escaping.
 */
function parseKeywordArgs(name: string, body: string): Record<string, string> {
  const args: Record<string, string> = {};
  const src = body.trim();
  if (src === '') return args;
  if ((name === 'type' || name === 'finished') && /^content\s*=/.test(src)) {
    const value = src.replace(/^content\s*=\s*/, '');
    const quote = value[0];
    if ((quote === "'" || quote === '"') && value.endsWith(quote) && value.length >= 2) {
      args.content = unescapePython(value.slice(1, -1), quote);
      return args;
    }
  }
  let i = 0;
  while (i < src.length) {
    const key = /^\s*([A-Za-z_]\w*)\s*=\s*/.exec(src.slice(i));
    if (!key) throw new ResponseParseError(`bad argument list in ${name}(${src.slice(0, 60)})`);
    i += key[0].length;
    const quote = src[i];
    let value: string;
    if (quote === "'" || quote === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== quote) j += src[j] === '\\' ? 2 : 1;
      if (j >= src.length) throw new ResponseParseError(`unterminated string in ${name}(...)`);
      value = unescapePython(src.slice(i + 1, j), quote);
      i = j + 1;
    } else {
      const bare = /^[^,]*/.exec(src.slice(i))![0];
      value = bare.trim();
      i += bare.length;
    }
    if (value !== '') args[key[1]!] = value.replace(/^\s+/, '');
    const sep = /^\s*,?\s*/.exec(src.slice(i))!;
    i += sep[0].length;
  }
  return args;
}

function unescapePython(s: string, quote: string): string {
  return s.replace(/\\(n|t|r|\\|'|")/g, (_, c: string) => {
    if (c === 'n') return '\n';
    if (c === 't') return '\t';
    if (c === 'r') return '\r';
    return c === quote || c === '\\' || c === "'" || c === '"' ? c : `\\${c}`;
  });
}

/** '(x,y)' or '(x1,y1,x2,y2)', with or without <|box_start|> tokens, to screen fractions. */
export function parseBox(value: string, coords: CoordinateMode): Box {
  const nums = value
    .replace(/<\|box_start\|>|<\|box_end\|>/g, '')
    .replace(/[()[\]\s]/g, '')
    .split(',')
    .filter((s) => s !== '')
    .map(Number);
  if ((nums.length !== 2 && nums.length !== 4) || nums.some((n) => !Number.isFinite(n))) {
    throw new ResponseParseError(`bad box ${JSON.stringify(value)}`);
  }
  const [sx, sy] = coords.kind === 'relative' ? [coords.factor, coords.factor] : [coords.width, coords.height];
  const f = nums.map((n, i) => n / (i % 2 === 0 ? sx : sy));
  return nums.length === 2 ? [f[0]!, f[1]!, f[0]!, f[1]!] : [f[0]!, f[1]!, f[2]!, f[3]!];
}
