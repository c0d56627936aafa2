// Two local desktop envs at once, driven only through the OSWorld protocol (pyautogui code via /execute):
// env A: a right click at coordinates opens openbox's root menu (the screenshots differ only there), text
// typed into xterm lands in A's file only, Chromium opens tabs over CDP;
// env B: LibreOffice Calc opens an uploaded xlsx, typed cells + ctrl+s (Keep format dialog -> Enter) keep the
// xlsx, the fetched file parses with openpyxl and holds the values; /accessibility names the focused app.
// Real desktops (needs scripts/install-desktop.sh); each env is closed and leaves no process behind.
import t from 'tap';
import { request } from 'undici';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalProvider } from '../../../harness/env/providers/local/index.ts';
import type { LocalEnv } from '../../../harness/env/providers/local/index.ts';
import { diffBox, execFileP, leftovers, skipReason, sleep, waitFile, waitWindow } from './desktop-helpers.ts';

const skip = skipReason('xterm', 'soffice', 'chromium');

async function makeXlsx(): Promise<Buffer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'xlsx-'));
  const f = path.join(dir, 'data.xlsx');
  await execFileP('/usr/bin/python3', [
    '-c',
    `import openpyxl, sys
wb = openpyxl.Workbook(); ws = wb.active; ws.title = 'Fruit'
for row in [('name', 'qty'), ('apple', 3), ('banana', 5)]: ws.append(row)
wb.save(sys.argv[1])`,
    f,
  ]);
  const b = readFileSync(f);
  rmSync(dir, { recursive: true, force: true });
  return b;
}

async function readXlsx(data: Buffer): Promise<unknown[][]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'xlsx-'));
  const f = path.join(dir, 'out.xlsx');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(f, data);
  const { stdout } = await execFileP('/usr/bin/python3', [
    '-c',
    `import openpyxl, sys, json
ws = openpyxl.load_workbook(sys.argv[1]).active
print(json.dumps([[c for c in r] for r in ws.iter_rows(values_only=True)]))`,
    f,
  ]);
  rmSync(dir, { recursive: true, force: true });
  return JSON.parse(stdout) as unknown[][];
}

t.test('two local envs driven in parallel', { skip }, async (t) => {
  const provider = new LocalProvider();
  t.teardown(() => provider.closeAll());
  const [a, b] = (await Promise.all([provider.start({ name: 'appsA' }), provider.start({ name: 'appsB' })])) as [
    LocalEnv,
    LocalEnv,
  ];
  t.not(a.display, b.display, 'own displays');
  t.not(a.ports.chromium, b.ports.chromium, 'own CDP ports');

  const flowA = async () => {
    const c = a.client;
    // -- a right click at coordinates opens the root menu, and only that region changes
    await c.executePython('pyautogui.moveTo(300, 300)');
    await sleep(300);
    const before = await c.screenshot();
    await c.executePython("pyautogui.click(300, 300, button='right')");
    await sleep(600);
    const menu = await c.screenshot();
    const box = await diffBox(before, menu);
    t.ok(box && box.count > 2000, `menu drawn (${box?.count} px changed)`);
    if (box) {
      t.ok(box.x0 >= 290 && box.y0 >= 290, `changes start at the click (${box.x0},${box.y0})`);
      t.ok(box.x1 < 1000 && box.y1 < 1080, `changes stay near the menu (${box.x1},${box.y1})`);
    }
    await c.executePython("pyautogui.press('esc')");
    await sleep(400);
    t.equal(await diffBox(before, await c.screenshot()), null, 'esc closes the menu: screen as before');

    // -- type into xterm; the file is A's only
    await c.launch(['xterm', '-u8', '-T', 'typing', '-e', 'sh', '-c', 'cat > "$HOME/Desktop/typed.txt"']);
    await waitWindow(c, /typing$/);
    await sleep(500);
    const r = await c.executePython(
      "pyautogui.click(960, 540); pyautogui.write('hello from A\\n'); pyautogui.write('ünï € 日本\\n'); pyautogui.hotkey('ctrl', 'd')",
    );
    t.equal(r.status, 'success', JSON.stringify(r));
    const text = await waitFile(c, '~/Desktop/typed.txt', /日本\n$/);
    t.equal(text, 'hello from A\nünï € 日本\n', 'typed text, non-ASCII too');

    // -- Chromium: CDP answers on A's port and opens tabs
    await c.launch(['google-chrome', 'data:text/html,<title>first tab</title>hello']);
    const cdp = `http://127.0.0.1:${a.ports.chromium}`;
    let version: { Browser?: string } = {};
    for (let i = 0; i < 60 && !version.Browser; i++) {
      try {
        version = (await (await request(`${cdp}/json/version`)).body.json()) as { Browser?: string };
      } catch {
        await sleep(250);
      }
    }
    t.match(version.Browser, /Chrome/, 'CDP answers');
    const nt = await request(`${cdp}/json/new?${encodeURIComponent('data:text/html,<title>second tab</title>x')}`, { method: 'PUT' });
    t.equal(nt.statusCode, 200, 'new tab over CDP');
    await nt.body.dump();
    let titles: string[] = [];
    for (let i = 0; i < 40; i++) {
      const list = (await (await request(`${cdp}/json/list`)).body.json()) as Array<{ type: string; title: string }>;
      titles = list.filter((p) => p.type === 'page').map((p) => p.title);
      if (titles.includes('first tab') && titles.includes('second tab')) break;
      await sleep(250);
    }
    t.ok(titles.includes('first tab') && titles.includes('second tab'), `tabs: ${titles.join(', ')}`);
  };

  const flowB = async () => {
    const c = b.client;
    await c.upload('/home/user/Desktop/data.xlsx', await makeXlsx());
    t.equal(await c.getFile('~/Desktop/typed.txt'), null, "A's file is not in B");
    t.equal(await c.openFile('/home/user/Desktop/data.xlsx'), 'File opened successfully');
    await waitWindow(c, /data\.xlsx.*LibreOffice Calc/);
    await sleep(1500);
    const r = await c.executePython(
      "pyautogui.hotkey('ctrl', 'Home'); pyautogui.press('down', presses=3); pyautogui.write('pear\\t7\\n'); pyautogui.hotkey('ctrl', 's')",
    );
    t.equal(r.status, 'success', JSON.stringify(r));
    await waitWindow(c, /Keep current format|LibreOffice Calc$/, 10_000).catch(() => '');
    await sleep(1000);
    await c.executePython("pyautogui.press('enter')"); // "Use Excel 2007-365!"
    let rows: unknown[][] = [];
    for (let i = 0; i < 40; i++) {
      const data = await c.getFile('~/Desktop/data.xlsx');
      if (data) {
        try {
          rows = await readXlsx(data);
        } catch {
          /* being written */
        }
      }
      if (rows.length >= 4) break;
      await sleep(300);
    }
    t.same(rows, [['name', 'qty'], ['apple', 3], ['banana', 5], ['pear', 7]], 'saved xlsx holds the typed row');

    const at = (await c.accessibility()) ?? '';
    t.match(at, /<application[^>]* name="soffice"/, 'the a11y tree has LibreOffice');
    const active = /<frame[^>]*name="([^"]*)"[^>]*st:active="true"/.exec(at) ?? /<frame[^>]*st:active="true"[^>]*name="([^"]*)"/.exec(at);
    t.match(active?.[1] ?? '', /LibreOffice Calc/, 'the active frame is the focused Calc window');
  };

  await Promise.all([flowA(), flowB()]);

  const ids = [a, b].map((e) => ({ id: e.id, root: e.root }));
  await Promise.all([a.close(), b.close()]);
  for (const e of ids) t.same(leftovers(e.id, e.root), [], `no process of ${e.id} left`);
});
