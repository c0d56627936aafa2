/**
 * Parsed UI-TARS actions -> the pyautogui code OSWorld executes (POST /execute), as ARPO's
 * agent emits it, with its crash bugs fixed:
 * - press(key=...) works (ARPO read an unassigned variable and crashed the task);
 * - typed text is a properly escaped Python literal, so quotes, backslashes and newlines
 *   inside it type as written (ARPO produced a SyntaxError for a newline mid-text);
 * - the thought goes into # comments, so a thought containing ''' cannot break the code;
 * - scroll left/right scrolls horizontally (ARPO emitted nothing);
 * - a click without a box is a parse error caught by the retry, not a crash.
 * Special actions map to OSWorld's control words: finished -> DONE, wait -> WAIT,
 * error_env -> FAIL; call_user is decided by the agent (tolerance).
 */
import { ResponseParseError, type Box, type ParsedAction } from './parse-response.ts';

export type ControlWord = 'DONE' | 'WAIT' | 'FAIL';

/** A Python string literal holding `s` exactly. */
export function pyString(s: string): string {
  let out = "'";
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === "'") out += "\\'";
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return `${out}'`;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

function center(box: Box | undefined, width: number, height: number, action: string): [number, number] {
  if (!box) throw new ResponseParseError(`${action} needs a start_box`);
  return [round3(((box[0] + box[2]) / 2) * width), round3(((box[1] + box[3]) / 2) * height)];
}

/** Key names as the model writes them -> pyautogui's. */
function keyName(key: string): string {
  const k = key.trim().toLowerCase();
  const map: Record<string, string> = {
    arrowleft: 'left', arrowright: 'right', arrowup: 'up', arrowdown: 'down',
    space: 'space', control: 'ctrl', return: 'enter', escape: 'esc', cmd: 'command', super: 'win', meta: 'win',
  };
  return map[k] ?? k;
}

function hotkeyKeys(value: string): string[] {
  return value.split(/[\s+]+/).filter((k) => k !== '').map(keyName);
}

/** Code for one action; header lines make every snippet runnable on its own, as ARPO's are. */
export function actionToCode(action: ParsedAction, thought: string, width: number, height: number): string | ControlWord {
  const lines: string[] = [];
  const a = action.args;
  switch (action.type) {
    case 'finished':
      return 'DONE';
    case 'wait':
      return 'WAIT';
    case 'error_env':
      return 'FAIL';
    case 'call_user':
      return 'WAIT';
    case 'hotkey': {
      const keys = hotkeyKeys(a.key ?? a.hotkey ?? '');
      if (keys.length === 0) throw new ResponseParseError('hotkey without keys');
      lines.push(`pyautogui.hotkey(${keys.map(pyString).join(', ')})`);
      break;
    }
    case 'press': {
      const key = a.key ?? a.press;
      if (!key) throw new ResponseParseError('press without a key');
      lines.push(`pyautogui.press(${pyString(keyName(key))})`);
      break;
    }
    case 'keydown':
    case 'keyup': {
      const key = a.key ?? a.press;
      if (!key) throw new ResponseParseError(`${action.type} without a key`);
      lines.push(`pyautogui.${action.type === 'keydown' ? 'keyDown' : 'keyUp'}(${pyString(keyName(key))})`);
      break;
    }
    case 'type': {
      let content = a.content ?? '';
      const enter = content.endsWith('\n');
      if (enter) content = content.slice(0, -1);
      if (content) lines.push(`pyautogui.write(${pyString(content)}, interval=0.1)`, 'time.sleep(0.5)');
      if (enter) lines.push("pyautogui.press('enter')");
      break;
    }
    case 'drag':
    case 'select': {
      const [sx, sy] = center(action.startBox, width, height, action.type);
      const [ex, ey] = center(action.endBox, width, height, `${action.type} end`);
      lines.push(`pyautogui.moveTo(${sx}, ${sy})`, `pyautogui.dragTo(${ex}, ${ey}, duration=1.0)`);
      break;
    }
    case 'scroll': {
      const dir = (a.direction ?? 'down').toLowerCase();
      const at = action.startBox ? center(action.startBox, width, height, 'scroll') : null;
      const where = at ? `, x=${at[0]}, y=${at[1]}` : '';
      if (dir.includes('up')) lines.push(`pyautogui.scroll(5${where})`);
      else if (dir.includes('down')) lines.push(`pyautogui.scroll(-5${where})`);
      else if (dir.includes('left')) lines.push(`pyautogui.hscroll(-5${where})`);
      else if (dir.includes('right')) lines.push(`pyautogui.hscroll(5${where})`);
      else throw new ResponseParseError(`unknown scroll direction ${dir}`);
      break;
    }
    case 'click':
    case 'left_single': {
      const [x, y] = center(action.startBox, width, height, action.type);
      lines.push(`pyautogui.click(${x}, ${y}, button='left')`);
      break;
    }
    case 'left_double': {
      const [x, y] = center(action.startBox, width, height, action.type);
      lines.push(`pyautogui.doubleClick(${x}, ${y}, button='left')`);
      break;
    }
    case 'right_single': {
      const [x, y] = center(action.startBox, width, height, action.type);
      lines.push(`pyautogui.click(${x}, ${y}, button='right')`);
      break;
    }
    case 'hover': {
      const [x, y] = center(action.startBox, width, height, action.type);
      lines.push(`pyautogui.moveTo(${x}, ${y})`);
      break;
    }
  }
  const comment = thought ? ['# Thought:', ...thought.split('\n').map((l) => `# ${l}`)] : [];
  return ['import pyautogui', 'import time', ...comment, ...lines].join('\n');
}
