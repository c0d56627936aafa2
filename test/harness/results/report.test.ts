/**
 * The trajectory report (report.html) of result folders the harness wrote itself (fixture.ts:
 * runTrial with scripted UI-TARS responses, real PNGs, real traj.jsonl), opened from disk in a
 * real headless Chromium: it renders with no network, every screenshot loads, the action marks sit
 * at the action's pixel coordinates on the screenshot, a task's steps are navigable (buttons, step
 * strip, keyboard, #link), the filter works; a screenshot of the page is a non-blank PNG showing
 * the click mark. Also: marks and descriptions of the pyautogui code the agent writes, summary.json
 * linking the report, and `run-multienv report`.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import sharp from 'sharp';
import t from 'tap';
import { responseToActions } from '../../../harness/agent/uitars/response-actions.ts';
import { reportMain } from '../../../harness/cli/report.ts';
import { actionMarks, describeAction, readTrajectory } from '../../../harness/results/trajectory.ts';
import { REPO_ROOT } from '../../../server/model/checkpoint/tiny.ts';
import { buildResults, latencyOf, SCREEN, type Results } from './fixture.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'];

const readJson = <T>(f: string): T => JSON.parse(fs.readFileSync(f, 'utf8')) as T;

let results: Results;
t.before(async () => {
  results = await buildResults(t.testdir({}));
});

t.test('the pointer actions of the agent\'s pyautogui code, as marks and descriptions', async (t) => {
  const code = (action: string): string => {
    const r = responseToActions(`Thought: a thought with ''' quotes\nAction: ${action}`, { kind: 'relative', factor: 1000 }, SCREEN, () => 'WAIT');
    t.equal(r.actions.length, 1);
    return r.actions[0]!;
  };
  t.same(actionMarks(code("click(start_box='(500,300)')")), [{ kind: 'click', x: 640, y: 216 }]);
  t.same(actionMarks(code("left_double(start_box='(500,300)')")), [{ kind: 'double', x: 640, y: 216 }]);
  t.same(actionMarks(code("right_single(start_box='(100,100)')")), [{ kind: 'right', x: 128, y: 72 }]);
  t.same(actionMarks(code("hover(start_box='(100,100)')")), [{ kind: 'move', x: 128, y: 72 }]);
  t.same(actionMarks(code("drag(start_box='(200,250)', end_box='(450,600)')")), [{ kind: 'drag', x: 256, y: 180, x2: 576, y2: 432 }]);
  t.same(actionMarks(code("scroll(start_box='(500,500)', direction='down')")), [{ kind: 'scroll', x: 640, y: 360, direction: 'down' }]);
  t.same(actionMarks(code("scroll(start_box='(500,500)', direction='left')")), [{ kind: 'scroll', x: 640, y: 360, direction: 'left' }]);
  t.same(actionMarks(code("type(content='a, (b)')")), []);
  t.same(actionMarks(code("hotkey(key='ctrl s')")), []);
  // OSWorld's own agents' forms: keywords, tuples, mouseDown/mouseUp
  t.same(actionMarks('pyautogui.click(x=10, y=20)'), [{ kind: 'click', x: 10, y: 20 }]);
  t.same(actionMarks('pyautogui.moveTo((5, 6))\npyautogui.mouseDown()\npyautogui.mouseUp(50, 60)'), [{ kind: 'drag', x: 5, y: 6, x2: 50, y2: 60 }]);
  t.equal(describeAction(code("click(start_box='(500,300)')")), 'click (640, 216)');
  t.equal(describeAction(code("drag(start_box='(200,250)', end_box='(450,600)')")), 'drag (256, 180) → (576, 432)');
  t.equal(describeAction(code("type(content='it\\'s\\n')")), 'type "it\'s"; press enter');
  t.equal(describeAction(code("hotkey(key='ctrl s')")), 'hotkey ctrl+s');
  t.equal(describeAction(code("scroll(start_box='(500,500)', direction='up')")), 'scroll up 5 at (640, 360)');
  t.equal(describeAction('DONE'), 'DONE');
});

t.test('what the harness wrote reads back as steps; summary.json links the report', async (t) => {
  const trial = results.trial('0');
  const traj = readTrajectory(path.join(trial, 'os', 'type-hello'));
  t.equal(traj.instruction, 'Click into the editor and type the word hello.');
  t.match(traj.resetScreenshot, /^step_reset_\d{8}@\d{6}\.png$/);
  t.equal(traj.steps.length, 3);
  t.match(traj.steps[0], { stepNum: 1, thought: 'The editor is in the middle; click into it.', modelAction: "click(start_box='(500,300)')", screenshot: /^step_1_/ });
  t.match(traj.steps[0]!.modelCalls, [{ latencyMs: latencyOf(1), promptTokens: 1500, completionTokens: 31 }]);
  t.equal(traj.steps[2]!.action, 'DONE');
  t.equal(traj.steps[2]!.done, true);
  const summary = readJson<{ report?: string; successRate: number }>(path.join(trial, 'summary.json'));
  t.equal(summary.report, 'report.html');
  t.ok(fs.existsSync(path.join(trial, 'report.html')));
  const html = fs.readFileSync(path.join(trial, 'report.html'), 'utf8');
  t.notMatch(html, /(src|href)="(https?:)?\/\//, 'no external assets');
  t.notMatch(html, /(src|href)="\//, 'no absolute paths');
  // multi-action responses: two traj lines from one model step
  const multi = readTrajectory(path.join(results.trial('1'), 'os', 'open-menu'));
  t.same(multi.steps.map((s) => s.stepNum), [1, 1, 2]);
});

interface Geometry {
  rx: number;
  ry: number;
  w: number;
  h: number;
}

async function waitVisibleImage(page: Page, task: string): Promise<void> {
  await page.waitForFunction<boolean>(`(() => { const img = document.querySelector('#${task} .step:not([hidden]) img'); if (img) img.scrollIntoView(); return !!img && img.complete && img.naturalWidth > 0; })()`);
}

t.test('the report in headless Chromium, from disk', async (t) => {
  const trial = results.trial('0');
  const report = path.join(trial, 'report.html');
  const tmp = t.testdir({});
  const context: BrowserContext = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1400, height: 1000 },
  });
  t.teardown(() => context.close());
  const page = context.pages()[0] ?? (await context.newPage());
  const requests: string[] = [];
  const problems: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  await page.goto(pathToFileURL(report).href);

  t.match(await page.title(), /^Trial report: .*ui-tars \/ 0$/);
  t.equal(await page.locator('table.domains tr').count(), 3, 'header + 2 domains');
  t.equal(await page.locator('details.task').count(), 4);
  t.match(await page.locator('.overall').textContent(), /2\/4 task\(s\) succeeded/);
  t.match(await page.locator('table.config').textContent(), /temperature 0/);
  t.equal(await page.locator('header a[href="summary.json"]').count(), 1, 'links the summary');

  // A task: open it, the first action's screen with the click drawn where it happened.
  const task = page.locator('#task-os-type-hello');
  t.match(await task.locator(':scope > summary').textContent(), /type-hello.*success.*3 actions.*Click into the editor/);
  await task.locator(':scope > summary').click();
  t.equal(await task.getAttribute('open'), '', 'opened');
  const pos = task.locator('.pos');
  t.equal(await pos.textContent(), '1 / 4', '3 actions + the final screen');
  t.equal(await task.locator('.step:visible').count(), 1, 'one step at a time');
  await waitVisibleImage(page, 'task-os-type-hello');
  const traj = readTrajectory(path.join(trial, 'os', 'type-hello'));
  t.match(await task.locator('.step:visible img').getAttribute('src'), new RegExp(`^os/type-hello/${encodeURIComponent(traj.resetScreenshot!)}$`), 'the screen before the action, by a relative path');
  const click = task.locator('.step:visible g.mark-click');
  t.equal(await click.count(), 1);
  t.equal(await click.getAttribute('data-x'), '640');
  t.equal(await click.getAttribute('data-y'), '216');
  const geo = await page.evaluate<Geometry>(`(() => {
    const step = document.querySelector('#task-os-type-hello .step:not([hidden])');
    const img = step.querySelector('img'), c = step.querySelector('g.mark-click circle');
    const a = img.getBoundingClientRect(), b = c.getBoundingClientRect();
    return { rx: ((b.left + b.right) / 2 - a.left) / a.width, ry: ((b.top + b.bottom) / 2 - a.top) / a.height, w: img.naturalWidth, h: img.naturalHeight };
  })()`);
  t.same([geo.w, geo.h], [SCREEN.width, SCREEN.height], 'the real screenshot loaded');
  t.ok(Math.abs(geo.rx - 640 / SCREEN.width) < 0.01 && Math.abs(geo.ry - 216 / SCREEN.height) < 0.01, `the mark is drawn at the click: ${JSON.stringify(geo)}`);
  t.match(await task.locator('.step:visible .thought').textContent(), /The editor is in the middle; click into it\./);
  t.match(await task.locator('.step:visible .summary-action').textContent(), /click \(640, 216\)/);
  t.equal(await task.locator('.prev').isDisabled(), true);

  // The page as a picture: a PNG, not blank, with the red click mark where the click was.
  const frame = task.locator('.step:visible .frame');
  const shotFile = path.join(tmp, 'frame.png');
  await frame.screenshot({ path: shotFile });
  const { data, info } = await sharp(shotFile).raw().toBuffer({ resolveWithObject: true });
  let n = 0;
  let sx = 0;
  let sy = 0;
  for (let i = 0; i < info.width * info.height; i++) {
    const [r, g, b] = [data[i * info.channels]!, data[i * info.channels + 1]!, data[i * info.channels + 2]!];
    if (r > 200 && g < 80 && b < 80) {
      n++;
      sx += i % info.width;
      sy += Math.floor(i / info.width);
    }
  }
  t.ok(n > 20, `red mark pixels: ${n}`);
  t.ok(Math.abs(sx / n / info.width - 0.5) < 0.02 && Math.abs(sy / n / info.height - 0.3) < 0.02, 'centred on the click');
  const pageShot = await page.screenshot({ fullPage: false });
  const meta = await sharp(pageShot).metadata();
  t.equal(meta.format, 'png');
  t.same([meta.width, meta.height], [1400, 1000]);
  const stats = await sharp(pageShot).stats();
  t.ok(stats.channels.some((c) => c.stdev > 20), 'not blank');
  fs.writeFileSync(path.join(tmp, 'page.png'), pageShot);

  // Next: the second action (typing) on the screen after the click, its latency from traj.jsonl.
  await task.locator('.next').click();
  t.equal(await pos.textContent(), '2 / 4');
  t.equal(await task.locator('.step:visible').getAttribute('data-index'), '1');
  await waitVisibleImage(page, 'task-os-type-hello');
  t.match(await task.locator('.step:visible img').getAttribute('src'), new RegExp(`${encodeURIComponent(traj.steps[0]!.screenshot!)}$`));
  t.match(await task.locator('.step:visible .thought').textContent(), /Now type the word\./);
  t.match(await task.locator('.step:visible pre.action').textContent(), /pyautogui\.write\('hello', interval=0\.1\)/);
  t.equal(await task.locator('.step:visible g.mark').count(), 0, 'typing draws nothing');
  t.equal(await task.locator('.step:visible .lat').getAttribute('data-ms'), String(traj.steps[1]!.modelCalls[0]!.latencyMs));
  t.match(await task.locator('.step:visible .latency').textContent(), /model 1\.00 s in 1 call.*2000 prompt \+ 32 completion tokens/);

  // The strip jumps to the end: score and the final screen; keyboard goes back.
  await task.locator('.strip button[data-go="3"]').click();
  t.equal(await pos.textContent(), '4 / 4');
  t.equal(await task.locator('.step:visible .score').textContent(), '1');
  t.equal(await task.locator('.next').isDisabled(), true);
  await waitVisibleImage(page, 'task-os-type-hello');
  await task.locator('.viewer').focus();
  await page.keyboard.press('ArrowLeft');
  t.equal(await pos.textContent(), '3 / 4');
  t.match(await task.locator('.step:visible .summary-action').textContent(), /DONE/);

  // A drag: arrow from start to end; the failing task: scroll mark.
  const drag = page.locator('#task-calc-select-range');
  await drag.locator(':scope > summary').click();
  const d = drag.locator('.step:visible g.mark-drag');
  t.same(await Promise.all(['data-x', 'data-y', 'data-x2', 'data-y2'].map((k) => d.getAttribute(k))), ['256', '180', '576', '432']);
  const menu = page.locator('#task-os-open-menu');
  await menu.locator(':scope > summary').click();
  await menu.locator('.next').click();
  t.equal(await menu.locator('.step:visible g.mark-scroll').getAttribute('data-kind'), 'scroll');
  t.equal(await menu.getAttribute('data-group'), 'fail');

  // The task without a result: its error, no steps.
  const broken = page.locator('#task-calc-needs-drive');
  t.equal(await broken.getAttribute('data-group'), 'error');
  await broken.locator(':scope > summary').click();
  t.match(await broken.locator('.error').first().textContent(), /no_such_setup_step/);
  t.equal(await broken.locator('.nosteps').count(), 1);

  // Every step of every task: each screenshot loads.
  for (const id of ['task-os-type-hello', 'task-os-open-menu', 'task-calc-select-range']) {
    const v = page.locator(`#${id}`);
    await v.locator('.strip button').first().click();
    for (;;) {
      await waitVisibleImage(page, id);
      if (await v.locator('.next').isDisabled()) break;
      await v.locator('.next').click();
    }
  }
  const images = await page.evaluate<{ loaded: number; broken: number }>(`(() => {
    const all = [...document.images];
    return { loaded: all.filter((i) => i.complete && i.naturalWidth > 0).length, broken: all.filter((i) => i.complete && i.naturalWidth === 0).length };
  })()`);
  t.equal(images.broken, 0);
  t.ok(images.loaded >= 11, `screenshots loaded: ${images.loaded}`);

  // The filter, and a link straight to a task.
  await page.selectOption('#filter', 'fail');
  t.equal(await page.locator('details.task:visible').count(), 1);
  await page.selectOption('#filter', 'all');
  t.equal(await page.locator('details.task:visible').count(), 4);
  const fresh = await context.newPage();
  fresh.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await fresh.goto(`${pathToFileURL(report).href}#task-calc-select-range`);
  t.equal(await fresh.locator('#task-calc-select-range').getAttribute('open'), '');
  t.equal(await fresh.locator('#task-os-type-hello').getAttribute('open'), null);
  await fresh.close();

  t.same(problems, [], 'no errors, no failed loads');
  t.ok(requests.some((u) => /^file:\/\/.*\/os\/type-hello\/step_1_.*\.png$/.test(u)), 'the screenshots came from the result folder');
  t.same(requests.filter((u) => !u.startsWith('file://') && !u.startsWith('data:')), [], 'nothing but local files');
});

t.test('run-multienv report: on demand, per trial or for all trials', async (t) => {
  const run = (...args: string[]) => spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin/run-multienv.mjs'), 'report', ...args], { encoding: 'utf8' });
  const quiet = (...args: string[]): number => {
    const log = console.log;
    console.log = (): void => {};
    try {
      return reportMain(args);
    } finally {
      console.log = log;
    }
  };
  for (const id of ['0', '1', '2']) {
    fs.rmSync(path.join(results.trial(id), 'report.html'));
    const file = path.join(results.trial(id), 'summary.json');
    const { report, ...rest } = readJson<{ report?: string }>(file);
    t.equal(report, 'report.html');
    fs.writeFileSync(file, JSON.stringify(rest));
  }
  const all = run('--result_dir', results.resultDir, '--trial-id', 'all');
  t.equal(all.status, 0, all.stderr);
  t.same(all.stdout.trim().split('\n'), ['0', '1', '2'].map((id) => `report: ${path.join(results.trial(id), 'report.html')}`));
  for (const id of ['0', '1', '2']) t.equal(readJson<{ report?: string }>(path.join(results.trial(id), 'summary.json')).report, 'report.html');
  t.match(fs.readFileSync(path.join(results.trial('1'), 'report.html'), 'utf8'), /id="task-os-open-menu"/);

  const out = path.join(t.testdir({}), 'elsewhere', 'r.html');
  t.equal(quiet('--trial_dir', results.trial('1'), '--meta_path', results.meta, '--out', out), 0);
  const html = fs.readFileSync(out, 'utf8');
  const rel = path.relative(path.dirname(out), path.join(results.trial('1'), 'os', 'type-hello')).split(path.sep).map(encodeURIComponent).join('/');
  t.ok(rel.startsWith('../'));
  t.ok(html.includes(`src="${rel}/step_reset_`), 'links relative to where the report is');

  t.throws(() => quiet('--trial-dir', results.modelRoot), /ui-tars holds several result folders \(0, 1, 2\): name one of them$/);
  t.throws(() => quiet('--result-dir', results.resultDir, '--trial-id', '7'), /cannot read .*7: no such trial folder/);
});
