/**
 * A trial's trajectory report: one static HTML file (report.html next to summary.json) that opens
 * from disk with no server and loads nothing from the network. Per domain and task: instruction,
 * score and status, and a step viewer: for each action the screen the model saw with the click,
 * drag, scroll or hover drawn on it (an SVG over the screenshot, in its pixel coordinates), the
 * thought, the model's action text, the executed code and the model call's latency and tokens;
 * then the final screen. Screenshots are linked by relative paths (domain/task/step_*.png), load
 * lazily, and only for tasks that are opened; without JavaScript every step is listed.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { TaskRef } from '../tasks/load-tasks.ts';
import { readTaskStatus, type TaskStatus } from './status.ts';
import type { TrialSummary } from './summary.ts';
import { actionMarks, describeAction, pngFileSize, readTrajectory, type Mark, type TrajStep, type Trajectory } from './trajectory.ts';
import { writeFileAtomic } from './writer.ts';

export const REPORT_FILE = 'report.html';

export interface ReportOptions {
  /** the trial folder: {result_dir}/{action_space}/{observation_type}/{model}/{trial_id} */
  dir: string;
  /** the task list (tasks without a folder show as not run); default: every task folder found */
  tasks?: TaskRef[];
  /** the trial's summary, for the header (default: summary.json when present) */
  summary?: TrialSummary;
  /** where to write (default: {dir}/report.html); screenshot links are relative to it */
  out?: string;
}

export interface ReportTask {
  domain: string;
  id: string;
  instruction: string | null;
  score: number | null;
  status: TaskStatus | 'not_run';
  steps: number;
  error: string | null;
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const fmt = (n: number, d = 3): string => String(Math.round(n * 10 ** d) / 10 ** d);
const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

/** Task folders under a trial dir: {domain}/{task} with a traj.jsonl, result.txt or status.json. */
export function scanTasks(dir: string): TaskRef[] {
  const refs: TaskRef[] = [];
  let domains: fs.Dirent[];
  try {
    domains = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    throw new Error(`cannot read ${dir}: no such trial folder`);
  }
  for (const d of domains.filter((x) => x.isDirectory() && x.name !== 'logs').sort((a, b) => a.name.localeCompare(b.name))) {
    let tasks: fs.Dirent[];
    try {
      tasks = fs.readdirSync(path.join(dir, d.name), { withFileTypes: true });
    } catch {
      continue;
    }
    for (const t of tasks.filter((x) => x.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
      const td = path.join(dir, d.name, t.name);
      if (['traj.jsonl', 'result.txt', 'status.json'].some((f) => fs.existsSync(path.join(td, f)))) refs.push({ domain: d.name, id: t.name });
    }
  }
  return refs;
}

function readJson(file: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** A dotted path into parsed JSON (undefined when absent). */
export function pick(obj: unknown, key: string): unknown {
  let v: unknown = obj;
  for (const k of key.split('.')) {
    if (!v || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

/** The instruction from the task config named by config.json (when the trajectory has none). */
function instructionFromConfig(config: Record<string, unknown> | null, ref: TaskRef): string | null {
  const base = pick(config, 'taskSet.baseDir');
  if (typeof base !== 'string') return null;
  const task = readJson(path.join(base, 'examples', ref.domain, `${ref.id}.json`));
  return typeof task?.instruction === 'string' ? task.instruction : null;
}

// ---- SVG marks ----------------------------------------------------------------------------------

function markSvg(m: Mark, n: number, label: boolean, u: number): string {
  const title = `<title>${esc(`${m.kind}${m.direction ? ` ${m.direction}` : ''} at (${fmt(m.x, 1)}, ${fmt(m.y, 1)})${m.x2 !== undefined ? ` → (${fmt(m.x2, 1)}, ${fmt(m.y2 ?? 0, 1)})` : ''}`)}</title>`;
  const attrs = `class="mark mark-${m.kind}" data-kind="${m.kind}" data-x="${fmt(m.x, 2)}" data-y="${fmt(m.y, 2)}"${m.x2 !== undefined ? ` data-x2="${fmt(m.x2, 2)}" data-y2="${fmt(m.y2 ?? 0, 2)}"` : ''}`;
  const sw = fmt(0.3 * u, 2);
  const r = 1.2 * u;
  const cross = `<line x1="${fmt(m.x - 2 * r, 1)}" y1="${fmt(m.y, 1)}" x2="${fmt(m.x + 2 * r, 1)}" y2="${fmt(m.y, 1)}" stroke-width="${fmt(0.15 * u, 2)}"/><line x1="${fmt(m.x, 1)}" y1="${fmt(m.y - 2 * r, 1)}" x2="${fmt(m.x, 1)}" y2="${fmt(m.y + 2 * r, 1)}" stroke-width="${fmt(0.15 * u, 2)}"/>`;
  const text = label ? `<text x="${fmt(m.x + 1.6 * r, 1)}" y="${fmt(m.y - 1.2 * r, 1)}" font-size="${fmt(2.2 * u, 1)}" stroke="none">${n}</text>` : '';
  let body: string;
  switch (m.kind) {
    case 'drag': {
      body = `<line x1="${fmt(m.x, 1)}" y1="${fmt(m.y, 1)}" x2="${fmt(m.x2 ?? m.x, 1)}" y2="${fmt(m.y2 ?? m.y, 1)}" stroke-width="${sw}" marker-end="url(#arrow-drag)"/><circle cx="${fmt(m.x, 1)}" cy="${fmt(m.y, 1)}" r="${fmt(0.8 * r, 1)}" stroke-width="${sw}"/>`;
      break;
    }
    case 'double':
    case 'triple':
      body = `<circle cx="${fmt(m.x, 1)}" cy="${fmt(m.y, 1)}" r="${fmt(r, 1)}" stroke-width="${sw}"/><circle cx="${fmt(m.x, 1)}" cy="${fmt(m.y, 1)}" r="${fmt(1.6 * r, 1)}" stroke-width="${sw}"/>${m.kind === 'triple' ? `<circle cx="${fmt(m.x, 1)}" cy="${fmt(m.y, 1)}" r="${fmt(2.2 * r, 1)}" stroke-width="${sw}"/>` : ''}${cross}`;
      break;
    case 'right':
    case 'middle':
      body = `<rect x="${fmt(m.x - r, 1)}" y="${fmt(m.y - r, 1)}" width="${fmt(2 * r, 1)}" height="${fmt(2 * r, 1)}" stroke-width="${sw}"/>${cross}`;
      break;
    case 'move':
      body = `<circle cx="${fmt(m.x, 1)}" cy="${fmt(m.y, 1)}" r="${fmt(r, 1)}" stroke-width="${sw}" stroke-dasharray="${fmt(0.6 * u, 1)}"/>${cross}`;
      break;
    case 'scroll': {
      const dy = m.direction === 'up' ? -1 : m.direction === 'down' ? 1 : 0;
      const dx = m.direction === 'left' ? -1 : m.direction === 'right' ? 1 : 0;
      body = `<circle cx="${fmt(m.x, 1)}" cy="${fmt(m.y, 1)}" r="${fmt(r, 1)}" stroke-width="${sw}"/><line x1="${fmt(m.x, 1)}" y1="${fmt(m.y, 1)}" x2="${fmt(m.x + dx * 4 * r, 1)}" y2="${fmt(m.y + dy * 4 * r, 1)}" stroke-width="${sw}" marker-end="url(#arrow-scroll)"/>`;
      break;
    }
    default:
      body = `<circle cx="${fmt(m.x, 1)}" cy="${fmt(m.y, 1)}" r="${fmt(r, 1)}" stroke-width="${sw}"/>${cross}`;
  }
  return `<g ${attrs}>${title}${body}${text}</g>`;
}

function overlay(marks: Mark[], w: number, h: number): string {
  const u = Math.max(w, h) / 100;
  return `<svg class="overlay" viewBox="0 0 ${w} ${h}" preserveAspectRatio="none" aria-hidden="true">${marks.map((m, i) => markSvg(m, i + 1, marks.length > 1, u)).join('')}</svg>`;
}

// ---- HTML ----------------------------------------------------------------------------------------

interface Ctx {
  /** folder the report is written in */
  outDir: string;
  trialDir: string;
  screen: { width: number; height: number };
}

function href(ctx: Ctx, ...parts: string[]): string {
  const rel = path.relative(ctx.outDir, path.join(ctx.trialDir, ...parts));
  return rel.split(path.sep).map(encodeURIComponent).join('/');
}

function shot(ctx: Ctx, ref: TaskRef, file: string | null, marks: Mark[], caption: string): string {
  if (!file) return `<figure class="shot missing"><div class="noshot">no screenshot</div><figcaption>${esc(caption)}</figcaption></figure>`;
  const size = pngFileSize(path.join(ctx.trialDir, ref.domain, ref.id, file)) ?? ctx.screen;
  const src = href(ctx, ref.domain, ref.id, file);
  return `<figure class="shot"><div class="frame"><img loading="lazy" src="${esc(src)}" width="${size.width}" height="${size.height}" alt="${esc(`${caption} (${file})`)}">${marks.length ? overlay(marks, size.width, size.height) : ''}</div><figcaption>${esc(caption)} · <a href="${esc(src)}">${esc(file)}</a></figcaption></figure>`;
}

function latency(s: TrajStep, sameAsPrevious: boolean): string {
  if (!s.modelCalls.length) return '';
  const total = s.modelCalls.reduce((a, c) => a + c.latencyMs, 0);
  const calls = s.modelCalls
    .map((c) => `${(c.latencyMs / 1000).toFixed(2)} s, ${c.promptTokens} prompt + ${c.completionTokens} completion tokens${c.retries ? `, ${c.retries} retr${c.retries === 1 ? 'y' : 'ies'}` : ''}${c.error ? ` — ${c.error}` : ''}`)
    .map((l) => `<li>${esc(l)}</li>`)
    .join('');
  return `<div class="latency"><span class="lat" data-ms="${Math.round(total)}">model ${(total / 1000).toFixed(2)} s</span> in ${s.modelCalls.length} call${s.modelCalls.length === 1 ? '' : 's'}${sameAsPrevious ? ' (the same response as the previous action)' : ''}<ul>${calls}</ul></div>`;
}

function stepHtml(ctx: Ctx, ref: TaskRef, traj: Trajectory, s: TrajStep, total: number): string {
  const before = s.index === 0 ? traj.resetScreenshot : traj.steps[s.index - 1]!.screenshot;
  const prev = s.index > 0 ? traj.steps[s.index - 1]! : null;
  const same = !!prev && prev.response === s.response && prev.stepNum === s.stepNum;
  const marks = actionMarks(s.action);
  const flags = [
    s.loop ? `<span class="flag loop">loop ×${s.loop}</span>` : '',
    s.gaveUp ? `<span class="flag gaveup">gave up (${esc(s.gaveUp)})</span>` : '',
    ...s.warnings.map((w) => `<span class="flag warn">${esc(w)}</span>`),
  ].join(' ');
  return `<div class="step" data-index="${s.index}" data-step="${s.stepNum}">
${shot(ctx, ref, before, marks, `screen before action ${s.index + 1}`)}
<div class="info"><h4>Action ${s.index + 1} of ${total} <span class="stepnum">(model step ${s.stepNum}${s.timestamp ? `, ${esc(s.timestamp)}` : ''})</span></h4>
<p class="summary-action"><b>${esc(describeAction(s.action))}</b> ${flags}</p>
${s.thought ? `<div class="thought"><span class="lbl">Thought</span><p>${esc(s.thought)}</p></div>` : ''}
${s.modelAction ? `<div class="model-action"><span class="lbl">Model action</span><pre>${esc(s.modelAction)}</pre></div>` : s.response && !s.thought ? `<div class="model-action"><span class="lbl">Response</span><pre>${esc(s.response)}</pre></div>` : ''}
<details class="code"><summary>Executed code</summary><pre class="action">${esc(s.action)}</pre></details>
${latency(s, same)}
${s.screenshot ? `<p class="after">After: <a href="${esc(href(ctx, ref.domain, ref.id, s.screenshot))}">${esc(s.screenshot)}</a></p>` : ''}
</div></div>`;
}

function endHtml(ctx: Ctx, ref: TaskRef, traj: Trajectory, t: ReportTask, index: number): string {
  const last = traj.steps.at(-1)?.screenshot ?? traj.resetScreenshot;
  return `<div class="step end" data-index="${index}" data-step="end">
${shot(ctx, ref, last, [], 'final screen')}
<div class="info"><h4>End</h4><p>Score <b class="score">${t.score === null ? '—' : esc(fmt(t.score))}</b>, status <span class="status st-${t.status}">${esc(t.status)}</span>, ${traj.steps.length} action${traj.steps.length === 1 ? '' : 's'}.</p>
${t.error ? `<p class="error">${esc(t.error)}</p>` : ''}</div></div>`;
}

const group = (t: ReportTask): 'success' | 'fail' | 'error' => (t.score === null ? 'error' : t.score > 0.5 ? 'success' : 'fail');

function taskHtml(ctx: Ctx, ref: TaskRef, t: ReportTask, traj: Trajectory): string {
  const dir = path.join(ctx.trialDir, ref.domain, ref.id);
  const links = ['traj.jsonl', 'runtime.log', 'status.json', 'recording.mp4']
    .filter((f) => fs.existsSync(path.join(dir, f)))
    .map((f) => `<a href="${esc(href(ctx, ref.domain, ref.id, f))}">${f}</a>`)
    .join(' · ');
  const anchor = `task-${ref.domain}-${ref.id}`;
  const steps = traj.steps.map((s) => stepHtml(ctx, ref, traj, s, traj.steps.length));
  const hasScreens = traj.steps.length > 0 || traj.resetScreenshot;
  if (hasScreens) steps.push(endHtml(ctx, ref, traj, t, traj.steps.length));
  const strip = steps.length > 1 ? `<ol class="strip">${traj.steps.map((s) => `<li><button type="button" data-go="${s.index}" title="${esc(describeAction(s.action))}">${s.index + 1}</button></li>`).join('')}<li><button type="button" data-go="${traj.steps.length}">end</button></li></ol>` : '';
  return `<details class="task" id="${esc(anchor)}" data-domain="${esc(ref.domain)}" data-task="${esc(ref.id)}" data-group="${group(t)}" data-status="${t.status}">
<summary><span class="badge g-${group(t)}">${t.score === null ? '—' : esc(fmt(t.score, 2))}</span> <code class="tid">${esc(ref.id)}</code> <span class="status st-${t.status}">${esc(t.status)}</span> <span class="nsteps">${t.steps} action${t.steps === 1 ? '' : 's'}</span> <span class="instr">${esc(t.instruction ?? '')}</span></summary>
<div class="task-body">
<p class="instruction"><span class="lbl">Instruction</span> ${t.instruction ? esc(t.instruction) : '<i>unknown</i>'}</p>
${t.error ? `<p class="error">${esc(t.error)}</p>` : ''}
${traj.skipped ? `<p class="warn">${traj.skipped} traj.jsonl line(s) are not JSON (a torn line from a killed run)</p>` : ''}
<p class="files">${links || '<i>no files</i>'} · <a href="#${esc(anchor)}">link</a></p>
${steps.length ? `<div class="viewer" tabindex="0"><div class="controls"><button type="button" class="prev">◀ Prev</button> <span class="pos">1 / ${steps.length}</span> <button type="button" class="next">Next ▶</button></div>${strip}<div class="steps">${steps.join('\n')}</div></div>` : '<p class="nosteps">No steps recorded.</p>'}
</div></details>`;
}

const CSS = `
:root{--ok:#1a7f37;--bad:#cf222e;--err:#9a6700;--mut:#57606a;--bd:#d0d7de;--bg2:#f6f8fa}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:16px 24px;color:#1f2328;background:#fff}
h1{font-size:20px;margin:0 0 6px}h2{font-size:17px;margin:22px 0 8px}h3{font-size:15px;margin:16px 0 6px}h4{margin:0 0 6px;font-size:14px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
pre{white-space:pre-wrap;word-break:break-word;background:var(--bg2);border:1px solid var(--bd);border-radius:4px;padding:6px 8px;margin:4px 0}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid var(--bd);padding:3px 8px;text-align:left}th{background:var(--bg2)}td.n{text-align:right}
.meta{color:var(--mut);margin:2px 0}
.bar{display:flex;gap:12px;align-items:center;margin:10px 0;flex-wrap:wrap}
details.task{border:1px solid var(--bd);border-radius:6px;margin:4px 0}
details.task>summary{cursor:pointer;padding:5px 8px;display:flex;gap:8px;align-items:baseline;list-style:none}
details.task>summary::before{content:"▸";color:var(--mut)}details.task[open]>summary::before{content:"▾"}
details.task[open]>summary{border-bottom:1px solid var(--bd);background:var(--bg2)}
.instr{color:var(--mut);overflow:hidden;text-overflow:ellipsis;white-space:nowrap;flex:1;min-width:0}
.badge{display:inline-block;min-width:38px;text-align:center;border-radius:10px;padding:0 6px;color:#fff;font-weight:600}
.g-success{background:var(--ok)}.g-fail{background:var(--bad)}.g-error{background:var(--err)}
.status{font-size:12px;color:var(--mut)}.st-success{color:var(--ok)}.st-fail{color:var(--bad)}
.nsteps{font-size:12px;color:var(--mut);white-space:nowrap}
.task-body{padding:8px 10px}
.lbl{display:inline-block;font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:var(--mut);margin-right:4px}
.error{color:var(--bad)}.warn{color:var(--err)}
.controls{display:flex;gap:10px;align-items:center;margin:4px 0}
.controls button,.strip button{font:inherit;padding:2px 10px;border:1px solid var(--bd);border-radius:4px;background:#fff;cursor:pointer}
.controls button:disabled{opacity:.4;cursor:default}
.strip{list-style:none;display:flex;flex-wrap:wrap;gap:3px;padding:0;margin:4px 0}
.strip button{padding:0 7px;font-size:12px}.strip button[aria-current="true"]{background:#0969da;color:#fff;border-color:#0969da}
.viewer:not(.js) .controls,.viewer:not(.js) .strip{display:none}
.viewer:focus{outline:none}
.step{display:grid;grid-template-columns:minmax(0,3fr) minmax(260px,2fr);gap:14px;padding:8px 0;border-top:1px dashed var(--bd)}
.viewer.js .step{border-top:0}
.step[hidden]{display:none}
@media (max-width:900px){.step{grid-template-columns:1fr}}
.shot{margin:0}.frame{position:relative;line-height:0;border:1px solid var(--bd)}
.frame img{width:100%;height:auto;display:block;background:var(--bg2)}
.overlay{position:absolute;left:0;top:0;width:100%;height:100%;pointer-events:none}
.mark{fill:none;stroke:#ff1f1f}.mark text{fill:#ff1f1f;stroke:none;font-weight:700;font-family:system-ui,sans-serif}
.mark-right,.mark-middle{stroke:#ff8c00}.mark-right text{fill:#ff8c00}.mark-move{stroke:#0969da}.mark-scroll{stroke:#8250df}.mark-drag{stroke:#d4009a}
figcaption{font-size:12px;color:var(--mut);margin-top:3px;line-height:1.3}
.noshot{padding:40px;text-align:center;background:var(--bg2);color:var(--mut)}
.thought p{margin:2px 0 6px;white-space:pre-wrap}
.flag{font-size:11px;border-radius:3px;padding:0 4px;background:#fff8c5;border:1px solid #d4a72c}
.latency{font-size:12px;color:var(--mut)}.latency ul{margin:2px 0 0 16px;padding:0}
.stepnum{font-weight:normal;color:var(--mut);font-size:12px}
.hidden-by-filter{display:none}
footer{margin-top:24px;color:var(--mut);font-size:12px}
`;

const JS = `
(function(){
  function setup(v){
    var steps=[].slice.call(v.querySelectorAll('.step'));
    var prev=v.querySelector('.prev'),next=v.querySelector('.next'),pos=v.querySelector('.pos');
    var strip=[].slice.call(v.querySelectorAll('.strip button'));
    var i=0;
    function show(n){
      i=Math.max(0,Math.min(steps.length-1,n));
      steps.forEach(function(s,k){s.hidden=k!==i;});
      if(pos)pos.textContent=(i+1)+' / '+steps.length;
      if(prev)prev.disabled=i===0;
      if(next)next.disabled=i===steps.length-1;
      strip.forEach(function(b){b.setAttribute('aria-current',String(Number(b.getAttribute('data-go'))===i));});
      v.setAttribute('data-current',String(i));
    }
    if(prev)prev.addEventListener('click',function(){show(i-1);});
    if(next)next.addEventListener('click',function(){show(i+1);});
    strip.forEach(function(b){b.addEventListener('click',function(){show(Number(b.getAttribute('data-go')));});});
    v.addEventListener('keydown',function(e){
      if(e.key==='ArrowLeft'){show(i-1);e.preventDefault();}
      else if(e.key==='ArrowRight'){show(i+1);e.preventDefault();}
    });
    v.classList.add('js');
    show(0);
  }
  [].forEach.call(document.querySelectorAll('.viewer'),setup);
  function openHash(){
    var id=decodeURIComponent(location.hash.slice(1));
    var el=id&&document.getElementById(id);
    if(el&&el.tagName==='DETAILS'){el.open=true;el.scrollIntoView();}
  }
  window.addEventListener('hashchange',openHash);openHash();
  var filter=document.getElementById('filter');
  if(filter)filter.addEventListener('change',function(){
    var g=filter.value;
    [].forEach.call(document.querySelectorAll('details.task'),function(d){
      d.classList.toggle('hidden-by-filter',g!=='all'&&d.getAttribute('data-group')!==g);
    });
  });
  var all=document.getElementById('expand');
  if(all)all.addEventListener('click',function(){
    var open=all.getAttribute('data-open')!=='true';
    [].forEach.call(document.querySelectorAll('details.task:not(.hidden-by-filter)'),function(d){d.open=open;});
    all.setAttribute('data-open',String(open));all.textContent=open?'Collapse all':'Expand all';
  });
})();
`;

/** The report's per-task rows (also what the CLI prints a count of). */
export function reportTasks(dir: string, tasks: TaskRef[], config: Record<string, unknown> | null): { ref: TaskRef; row: ReportTask; traj: Trajectory }[] {
  return tasks.map((ref) => {
    const td = path.join(dir, ref.domain, ref.id);
    const traj = readTrajectory(td);
    const st = readTaskStatus(td);
    return {
      ref,
      traj,
      row: {
        domain: ref.domain,
        id: ref.id,
        instruction: traj.instruction ?? instructionFromConfig(config, ref),
        score: st?.score ?? null,
        status: st?.status ?? 'not_run',
        steps: traj.steps.length,
        error: st?.error ?? traj.error,
      },
    };
  });
}

function configLines(config: Record<string, unknown> | null): string {
  if (!config) return '<p class="meta">No config.json in this trial.</p>';
  const s = (k: string): string => {
    const v = pick(config, k);
    return v === undefined || v === null ? '—' : typeof v === 'string' ? v : JSON.stringify(v);
  };
  const model = pick(config, 'model.agent') === 'replay' ? `replay of ${s('model.replayDir')}` : `${s('model.id')} (${s('model.root')}) via ${s('model.endpoints')}`;
  const commit = pick(config, 'harness.commit');
  const rows: [string, string][] = [
    ['model', model],
    ['agent', `coordinates ${s('agent.coordinates')}, max steps ${s('agent.maxSteps')}, history ${s('agent.historyN')}, prompt ${s('agent.promptVariant')}`],
    ['sampling', `temperature ${s('sampling.temperature')}, top_p ${s('sampling.top_p')}, max_tokens ${s('sampling.max_tokens')}, frequency_penalty ${s('sampling.frequency_penalty')}`],
    ['screen', `${s('image.screen.width')}×${s('image.screen.height')}`],
    ['task set', `${s('taskSet.count')} task(s) from ${s('taskSet.metaPath')} (hash ${String(pick(config, 'taskSet.hash') ?? '—').slice(0, 12)})`],
    ['harness', `${s('harness.name')} ${s('harness.version')}${typeof commit === 'string' ? ` @ ${commit.slice(0, 10)}${pick(config, 'harness.dirty') ? ' (modified)' : ''}` : ''}, started ${s('startedAt')}`],
  ];
  return `<table class="config">${rows.map(([k, v]) => `<tr><th>${k}</th><td>${esc(v)}</td></tr>`).join('')}</table>`;
}

/** The report's HTML. */
export function renderReport(o: ReportOptions): string {
  const dir = path.resolve(o.dir);
  const out = path.resolve(o.out ?? path.join(dir, REPORT_FILE));
  const config = readJson(path.join(dir, 'config.json'));
  const summary: { successRate?: unknown; tasks?: unknown } | null = o.summary ?? readJson(path.join(dir, 'summary.json'));
  const screen = { width: Number(pick(config, 'image.screen.width')) || 1920, height: Number(pick(config, 'image.screen.height')) || 1080 };
  const ctx: Ctx = { outDir: path.dirname(out), trialDir: dir, screen };
  const rows = reportTasks(dir, o.tasks ?? scanTasks(dir), config);
  const domains = new Map<string, { tasks: number; scored: number; success: number; total: number; steps: number }>();
  for (const { row } of rows) {
    const d = domains.get(row.domain) ?? { tasks: 0, scored: 0, success: 0, total: 0, steps: 0 };
    d.tasks++;
    d.steps += row.steps;
    if (row.score !== null) {
      d.scored++;
      d.total += row.score;
      if (row.score > 0.5) d.success++;
    }
    domains.set(row.domain, d);
  }
  const all = [...domains.values()].reduce((a, d) => ({ tasks: a.tasks + d.tasks, scored: a.scored + d.scored, success: a.success + d.success, total: a.total + d.total, steps: a.steps + d.steps }), { tasks: 0, scored: 0, success: 0, total: 0, steps: 0 });
  const parts = dir.split(path.sep).filter(Boolean);
  const trialName = parts.slice(-4).join(' / ');
  const domainRows = [...domains.entries()]
    .map(([name, d]) => `<tr><td><a href="#domain-${esc(name)}">${esc(name)}</a></td><td class="n">${d.success}/${d.tasks}</td><td class="n">${d.tasks ? pct(d.success / d.tasks) : '—'}</td><td class="n">${d.scored}</td><td class="n">${d.scored ? fmt(d.total / d.scored) : '—'}</td><td class="n">${d.tasks ? fmt(d.steps / d.tasks, 1) : '—'}</td></tr>`)
    .join('');
  const statusCounts = new Map<string, number>();
  for (const { row } of rows) statusCounts.set(row.status, (statusCounts.get(row.status) ?? 0) + 1);
  const sections = [...domains.keys()].map((name) => {
    const d = domains.get(name)!;
    const tasks = rows.filter((r) => r.ref.domain === name).map((r) => taskHtml(ctx, r.ref, r.row, r.traj));
    return `<section class="domain" id="domain-${esc(name)}"><h3>${esc(name)} <span class="meta">${d.success}/${d.tasks} succeeded</span></h3>\n${tasks.join('\n')}\n</section>`;
  });
  const rate = typeof summary?.successRate === 'number' ? `summary.json: ${pct(summary.successRate)} over ${String(summary.tasks)} task(s) (missing results count 0)` : '';
  // summary.json is written right after the report at the end of a run
  const fileLink = (f: string): string => (fs.existsSync(path.join(dir, f)) || (f === 'summary.json' && o.summary) ? `<a href="${esc(href(ctx, f))}">${f}</a>` : '');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(`Trial report: ${trialName}`)}</title>
<style>${CSS}</style></head>
<body>
<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>${['drag', 'scroll'].map((k) => `<marker id="arrow-${k}" viewBox="0 0 10 10" refX="8" refY="5" markerWidth="4" markerHeight="4" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" fill="${k === 'drag' ? '#d4009a' : '#8250df'}" stroke="none"/></marker>`).join('')}</defs></svg>
<header><h1>Trial report: ${esc(trialName)}</h1>
<p class="meta">${esc(dir)}</p>
<p class="overall"><b>${all.success}/${all.tasks}</b> task(s) succeeded (${all.tasks ? pct(all.success / all.tasks) : '—'}), ${all.scored} scored, mean score ${all.tasks ? fmt(all.total / all.tasks) : '—'} over all; ${[...statusCounts.entries()].map(([k, n]) => `${esc(k)} ${n}`).join(', ')}${rate ? `. ${esc(rate)}` : ''}</p>
${configLines(config)}
<p class="meta">${[fileLink('summary.json'), fileLink('config.json'), fileLink('logs')].filter(Boolean).join(' · ')}</p>
</header>
<h2>Domains</h2>
<table class="domains"><tr><th>domain</th><th>succeeded</th><th>rate</th><th>scored</th><th>mean score (scored)</th><th>actions / task</th></tr>${domainRows}</table>
<h2>Tasks</h2>
<div class="bar"><label>Show <select id="filter"><option value="all">all tasks</option><option value="success">succeeded</option><option value="fail">failed</option><option value="error">without a result</option></select></label> <button type="button" id="expand">Expand all</button>
<span class="meta">Open a task to step through its actions (◀ ▶, or the arrow keys). Red: click, orange: right click, pink: drag, purple: scroll, blue: hover.</span></div>
${sections.join('\n')}
<footer>Generated ${esc(new Date().toISOString())} by uitars-osworld from the result folder; screenshots are linked relative to this file.</footer>
<script>${JS}</script>
</body></html>
`;
}

/** Writes the report (atomically) and returns its path. */
export function writeReport(o: ReportOptions): string {
  const out = path.resolve(o.out ?? path.join(o.dir, REPORT_FILE));
  fs.mkdirSync(path.dirname(out), { recursive: true });
  writeFileAtomic(out, renderReport({ ...o, out }));
  return out;
}

/**
 * The report at the end of a trial (run-multienv): written next to summary.json and recorded in
 * the summary as `report`; a failure is a warning in the log, never the run's failure.
 */
export function writeTrialReport(dir: string, tasks: TaskRef[], summary: TrialSummary, log: (line: string) => void): string | null {
  try {
    const file = writeReport({ dir, tasks, summary });
    summary.report = path.relative(path.resolve(dir), file);
    return file;
  } catch (err) {
    log(`warning: cannot write the trajectory report: ${err instanceof Error ? err.message : String(err)}`);
    return null;
  }
}
