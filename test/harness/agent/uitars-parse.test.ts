/** UI-TARS response parsing and pyautogui code generation, with ARPO's crash cases. */
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { parseResponse, type CoordinateMode } from '../../../harness/agent/uitars/parse-response.ts';
import { actionToCode, pyString } from '../../../harness/agent/uitars/to-pyautogui.ts';
import { addBoxTokens, buildMessages } from '../../../harness/agent/uitars/history.ts';
import { renderUserPrompt } from '../../../harness/agent/uitars/prompt.ts';

const REL: CoordinateMode = { kind: 'relative', factor: 1000 };
const W = 1920;
const H = 1080;

function code(text: string, coords: CoordinateMode = REL): string[] {
  const p = parseResponse(text, coords);
  return p.actions.map((a) => actionToCode(a, p.thought, W, H) as string);
}

/** Python must accept the generated code (compile only; nothing runs). */
function compiles(src: string): boolean {
  return spawnSync('/usr/bin/python3', ['-c', 'import sys; compile(sys.stdin.read(), "<action>", "exec")'], { input: src }).status === 0;
}

t.test('click with relative coordinates (UI-TARS-2B) maps 0-1000 onto the screen', async (t) => {
  const [c] = code("Thought: The OK button is at the bottom.\nAction: click(start_box='(500,250)')");
  t.match(c, /pyautogui\.click\(960, 270, button='left'\)/);
  t.match(c, /^import pyautogui\nimport time\n# Thought:\n# The OK button is at the bottom\./);
  t.ok(compiles(c!));
});

t.test('absolute coordinates (UI-TARS-1.5) are pixels of the smart-resized frame', async (t) => {
  const [c] = code("Thought: x\nAction: click(start_box='(966,546)')", { kind: 'absolute', width: 1932, height: 1092 });
  t.match(c, /pyautogui\.click\(960, 540, button='left'\)/);
});

t.test('box tokens, 4-number boxes, drag, scroll, hotkeys', async (t) => {
  t.match(code("Thought: a\nAction: left_double(start_box='<|box_start|>(100,200)<|box_end|>')")[0], /doubleClick\(192, 216/);
  t.match(code("Thought: a\nAction: right_single(start_box='(100,200,300,400)')")[0], /click\(384, 324, button='right'\)/);
  const drag = code("Thought: a\nAction: drag(start_box='(100,100)', end_box='(500,500)')")[0]!;
  t.match(drag, /moveTo\(192, 108\)\npyautogui\.dragTo\(960, 540, duration=1\.0\)/);
  t.match(code("Thought: a\nAction: scroll(start_box='(500,500)', direction='down')")[0], /scroll\(-5, x=960, y=540\)/);
  t.match(code("Thought: a\nAction: scroll(direction='left')")[0], /hscroll\(-5\)/, 'left/right scroll horizontally (ARPO: no-op)');
  t.match(code("Thought: a\nAction: hotkey(key='ctrl c')")[0], /hotkey\('ctrl', 'c'\)/);
  t.match(code("Thought: a\nAction: hotkey(key='ctrl+shift+t')")[0], /hotkey\('ctrl', 'shift', 't'\)/);
  t.match(code("Thought: a\nAction: hotkey(key='arrowdown')")[0], /hotkey\('down'\)/);
});

t.test("ARPO's crash cases are fixed", async (t) => {
  // press(key=...) crashed ARPO's agent with UnboundLocalError.
  const press = code("Thought: confirm\nAction: press(key='enter')")[0]!;
  t.match(press, /pyautogui\.press\('enter'\)/);
  // An apostrophe in finished(content=...) broke ast parsing.
  const done = parseResponse("Thought: ok\nAction: finished(content='It's saved')", REL);
  t.equal(done.actions[0]!.args.content, "It's saved");
  t.equal(actionToCode(done.actions[0]!, done.thought, W, H), 'DONE');
  // Multi-line typed text was a SyntaxError inside the VM.
  const multi = code("Thought: write it\nAction: type(content='line one\nline two\\n')")[0]!;
  t.match(multi, /pyautogui\.write\('line one\\nline two', interval=0\.1\)/);
  t.match(multi, /pyautogui\.press\('enter'\)$/, 'a trailing newline presses Enter');
  t.ok(compiles(multi));
  // Quotes and backslashes type as written.
  const quoted = code(`Thought: q\nAction: type(content='say "hi" it\\'s C:\\\\tmp')`)[0]!;
  t.ok(compiles(quoted));
  const literal = /pyautogui\.write\((.*), interval/.exec(quoted)![1]!;
  const r = spawnSync('/usr/bin/python3', ['-c', `import sys; sys.stdout.write(${literal})`], { encoding: 'utf8' });
  t.equal(r.stdout, `say "hi" it's C:\\tmp`);
  // A thought with ''' cannot break the code any more.
  t.ok(compiles(code("Thought: the '''quoted''' part\nAction: click(start_box='(1,1)')")[0]!));
});

t.test('several actions per step; blank lines inside typed text do not split it', async (t) => {
  const p = parseResponse("Thought: two things\nAction: click(start_box='(10,10)')\n\ntype(content='a\n\nb')\n\nhotkey(key='enter')", REL);
  t.same(p.actions.map((a) => a.type), ['click', 'type', 'hotkey']);
  t.equal(p.actions[1]!.args.content, 'a\n\nb');
});

t.test('special actions and parse errors', async (t) => {
  const ctl = (s: string) => { const p = parseResponse(s, REL); return actionToCode(p.actions[0]!, p.thought, W, H); };
  t.equal(ctl('Thought: x\nAction: wait()'), 'WAIT');
  t.equal(ctl('Thought: x\nAction: error_env()'), 'FAIL');
  t.throws(() => parseResponse('I will click the button', REL), { name: 'ResponseParseError' });
  t.throws(() => parseResponse('Thought: x\nAction: teleport(to=1)', REL), { name: 'ResponseParseError' });
  t.throws(() => parseResponse("Thought: x\nAction: click(start_box='(1,2,3)')", REL), { name: 'ResponseParseError' });
  const noBox = parseResponse('Thought: x\nAction: click()', REL);
  t.throws(() => actionToCode(noBox.actions[0]!, '', W, H), { name: 'ResponseParseError' }, 'a click without a box is a parse error, not a crash');
  t.equal(parseResponse('Reflection: it failed\nAction_Summary: try again\nAction: wait()', REL).thought, 'try again');
});

t.test('pyString round-trips through Python', async (t) => {
  const s = 'tab\there \u00e9\u4e2d\u{1F600} \\ \' " \x01 end';
  const r = spawnSync('/usr/bin/python3', ['-c', `import sys; sys.stdout.buffer.write((${pyString(s)}).encode())`], { encoding: 'utf8' });
  t.equal(r.stdout, s);
});

t.test('history: ARPO message layout, box tokens restored, newest screenshots only', async (t) => {
  t.equal(
    addBoxTokens("Thought: x\nAction: click(start_box='(12,34)')"),
    "Thought: x\nAction: click(start_box='<|box_start|>(12,34)<|box_end|>')",
  );
  t.equal(addBoxTokens("Thought: x\nAction: click(start_box='(12, 34)')"), "Thought: x\nAction: click(start_box='(12, 34)')", 'as ARPO: a spaced pair is left alone');
  const png = (n: number) => Uint8Array.of(n);
  const history = [1, 2, 3].map((n) => ({ screenshot: png(n), response: `Thought: ${n}\nAction: wait()` }));
  const msgs = buildMessages('Open the file', history, png(9), { historyN: 2 });
  t.same(msgs.map((m) => `${m.role}:${m.content[0]!.type}`), [
    'system:text', 'user:text', 'assistant:text', 'assistant:text', 'user:image_url', 'assistant:text', 'user:image_url',
  ]);
  t.match((msgs[1]!.content[0] as { text: string }).text, /## User Instruction\nOpen the file/);
  t.equal(renderUserPrompt('a $& b').includes('a $& b'), true, 'instructions are inserted literally');
});
