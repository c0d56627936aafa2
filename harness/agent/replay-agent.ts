/**
 * Replays known UI-TARS responses: `{dir}/{taskId}.json` holds `{"responses": ["Thought: ...\nAction: ...", ...]}`.
 * Each response goes through the same parser and code generation as the live agent, so a
 * known trajectory drives the real pipeline (env, setup, evaluation) without a model.
 * When the responses run out, the agent answers DONE.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pngSize } from './uitars/agent.ts';
import type { CoordinateMode } from './uitars/parse-response.ts';
import { responseToActions } from './uitars/response-actions.ts';
import type { Agent, StepPrediction } from './agent.ts';

export class ReplayAgent implements Agent {
  private responses: string[] = [];
  private step = 0;

  constructor(
    private readonly dir: string,
    private readonly coords: CoordinateMode = { kind: 'relative', factor: 1000 },
  ) {}

  reset(taskId: string): void {
    const file = path.join(this.dir, `${taskId}.json`);
    if (!fs.existsSync(file)) throw new Error(`replay agent: no trajectory file ${file}`);
    const data = JSON.parse(fs.readFileSync(file, 'utf8')) as { responses?: unknown };
    if (!Array.isArray(data.responses) || data.responses.some((r) => typeof r !== 'string')) {
      throw new Error(`replay agent: ${file} needs {"responses": [string, ...]}`);
    }
    this.responses = data.responses as string[];
    this.step = 0;
  }

  async predict(_instruction: string, screenshot: Uint8Array): Promise<StepPrediction> {
    const text = this.responses[this.step++];
    if (text === undefined) return { prediction: 'replay finished', actions: ['DONE'] };
    // A recorded call_user is replayed as the live agent's first answer to it: WAIT.
    const { actions } = responseToActions(text, this.coords, pngSize(screenshot), () => 'WAIT');
    return { prediction: text, actions };
  }
}
