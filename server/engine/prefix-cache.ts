/**
 * Prompt KV by prompt content, for the agent loop: step k's prompt is step k-1's prompt, its
 * answer and a new screenshot, so the KV rows of step k-1's prompt are reused and only the rest is
 * prefilled.
 *
 * Only rows computed by prefill are stored (the prompt, not the generated tokens): decode may run
 * other kernels than prefill (quantized formats), and a reused row must be the row the uncached
 * path would compute. A match compares token ids and, over image rows, the images' content keys,
 * so the same text with another screenshot matches only up to that screenshot. M-RoPE positions
 * follow from the ids and image grids alone, so equal prefixes have equal positions.
 */
import crypto from 'node:crypto';
import type { KvRows } from '../model/runtime/kv-pool.ts';
import { ByteLru } from '../common/byte-lru.ts';

/** A prompt as the cache sees it: expanded ids, and per image its content key and first row. */
export interface PromptKey {
  ids: readonly number[];
  imageKeys: readonly string[];
  imageStarts: readonly number[];
}

export interface PrefixEntry extends PromptKey {
  rows: KvRows;
}

/** Rows of `entry` that `prompt` shares: equal ids, and equal images over the shared image rows. */
export function sharedPrefix(entry: PromptKey, prompt: PromptKey): number {
  const limit = Math.min(entry.ids.length, prompt.ids.length);
  let n = 0;
  while (n < limit && entry.ids[n] === prompt.ids[n]) n++;
  for (let i = 0; i < entry.imageStarts.length; i++) {
    const start = entry.imageStarts[i]!;
    if (start >= n) break;
    if (prompt.imageStarts[i] !== start || prompt.imageKeys[i] !== entry.imageKeys[i]) return start;
  }
  return n;
}

function entryKey(p: PromptKey): string {
  return crypto.createHash('sha256').update(JSON.stringify([p.ids, p.imageKeys])).digest('hex');
}

export class PrefixCache extends ByteLru<PrefixEntry> {
  /** Prompt tokens served from the cache. */
  reusedTokens = 0;

  /** The entry sharing the most rows with `prompt`, leaving at least one row to prefill (its logits are needed). */
  lookup(prompt: PromptKey): { entry: PrefixEntry; rows: number } | null {
    let best: { key: string; entry: PrefixEntry; rows: number } | null = null;
    for (const [key, entry] of this.values()) {
      const rows = Math.min(sharedPrefix(entry, prompt), prompt.ids.length - 1);
      if (rows > 0 && rows > (best?.rows ?? 0)) best = { key, entry, rows };
    }
    if (!best) {
      this.counters.misses++;
      return null;
    }
    this.get(best.key); // counts the hit and refreshes recency
    this.reusedTokens += best.rows;
    return { entry: best.entry, rows: best.rows };
  }

  /** Keeps a prompt's rows; entries it extends are dropped (every row they hold is in the new one). */
  store(prompt: PromptKey, rows: KvRows, bytes: number): void {
    for (const [key, entry] of [...this.values()]) {
      if (entry.ids.length <= prompt.ids.length && sharedPrefix(entry, prompt) === entry.ids.length) this.delete(key);
    }
    this.set(entryKey(prompt), { ids: prompt.ids, imageKeys: prompt.imageKeys, imageStarts: prompt.imageStarts, rows }, bytes);
  }
}
