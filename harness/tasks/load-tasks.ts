/**
 * Task lists ({domain: [ids]}) and task configs. The task id is the file name: 15 OSWorld
 * thunderbird files carry another task's id inside. A config that does not parse or does not
 * match the schema is reported with its path, and the run goes on without it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Compile } from 'typebox/compile';
import { TaskSchema, type Task } from './task-schema.ts';

export interface TaskRef {
  domain: string;
  id: string;
}

export interface LoadedTask extends TaskRef {
  file: string;
  task: Task;
}

export interface InvalidTask extends TaskRef {
  file: string;
  error: string;
}

const validator = Compile(TaskSchema);

/**
 * The task list, filtered to one domain unless `domain` is "all". A task named twice is listed
 * once (two workers on one task folder would clear each other's files); `onDuplicate` hears of it.
 */
export function loadTaskList(metaPath: string, domain = 'all', onDuplicate: (ref: TaskRef) => void = () => {}): TaskRef[] {
  let meta: unknown;
  try {
    meta = JSON.parse(fs.readFileSync(metaPath, 'utf8'));
  } catch (err) {
    // One line: a JSON error can quote the file's text, newlines and all.
    const why = (err instanceof Error ? err.message : String(err))
      .replace(/, ".*" is not valid JSON$/s, ': not valid JSON')
      .replace(/\s+/g, ' ')
      .slice(0, 200);
    throw new Error(`cannot read task list ${metaPath}: ${why}`);
  }
  if (!meta || typeof meta !== 'object' || Array.isArray(meta)) throw new Error(`task list ${metaPath} is not a {domain: [ids]} object`);
  const entries = Object.entries(meta as Record<string, unknown>);
  if (domain !== 'all' && !entries.some(([d]) => d === domain)) {
    throw new Error(`domain "${domain}" is not in ${metaPath} (it has ${entries.map(([d]) => d).join(', ')})`);
  }
  const refs: TaskRef[] = [];
  const seen = new Set<string>();
  for (const [d, ids] of entries) {
    if (domain !== 'all' && d !== domain) continue;
    if (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string')) throw new Error(`task list ${metaPath}: "${d}" is not a list of ids`);
    if (!d || d === '.' || d === '..' || /[/\\\0]/.test(d)) throw new Error(`task list ${metaPath}: invalid domain name ${JSON.stringify(d)}`);
    for (const id of ids as string[]) {
      // The id is a folder name of the result layout: no separators, no "." / "..".
      if (!id || id === '.' || id === '..' || /[/\\\0]/.test(id)) throw new Error(`task list ${metaPath}: "${d}" has an invalid task id ${JSON.stringify(id)}`);
      const key = `${d}/${id}`;
      if (seen.has(key)) {
        onDuplicate({ domain: d, id });
        continue;
      }
      seen.add(key);
      refs.push({ domain: d, id });
    }
  }
  return refs;
}

export function taskFile(baseDir: string, ref: TaskRef): string {
  return path.join(baseDir, 'examples', ref.domain, `${ref.id}.json`);
}

export function loadTask(baseDir: string, ref: TaskRef): LoadedTask | InvalidTask {
  const file = taskFile(baseDir, ref);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    return { ...ref, file, error: err instanceof Error ? err.message.split('\n')[0]! : String(err) };
  }
  if (!validator.Check(raw)) {
    const first = [...validator.Errors(raw)][0];
    return { ...ref, file, error: `invalid task: ${first ? `${first.instancePath || '/'} ${first.message}` : 'schema mismatch'}` };
  }
  return { ...ref, file, task: { ...raw, id: ref.id } };
}
