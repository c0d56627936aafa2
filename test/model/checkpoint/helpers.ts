import { CheckpointError } from '../../../server/model/checkpoint/safetensors.ts';

import type { Test } from 'tap';

/** A tap test object (the callback argument of t.test). */
export type Asserts = Test;

/** Asserts `fn` throws (or rejects with) a one-line CheckpointError matching `pattern` and naming `file`. */
export async function expectCheckpointError(
  tt: Asserts,
  fn: () => unknown,
  pattern: RegExp,
  file?: string,
): Promise<string | undefined> {
  try {
    await fn();
  } catch (e) {
    tt.ok(e instanceof CheckpointError, `CheckpointError (got ${(e as Error).name}: ${(e as Error).message})`);
    const msg = (e as Error).message;
    tt.match(msg, pattern, `message: ${msg}`);
    tt.notOk(msg.includes('\n'), 'one line');
    if (file !== undefined) tt.ok(msg.includes(file), `message names ${file}`);
    return msg;
  }
  tt.fail(`expected a CheckpointError matching ${pattern}`);
  return undefined;
}
