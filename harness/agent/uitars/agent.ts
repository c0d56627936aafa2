/**
 * The UI-TARS agent as ARPO evaluates it on OSWorld: one model call per step with the
 * episode's history, up to `maxTries` tries (after a parse failure the remaining tries sample
 * at temperature 1), special actions to OSWorld's control words, call_user tolerated a few
 * times per task (ARPO never reset its counter between tasks), and the step cap turned into
 * FAIL. Model-server outages are not tries: they surface as ModelUnavailableError.
 */
import { ModelRequestError, type ModelClient } from '../model-client.ts';
import { smartResize } from '../../../server/vision/smart-resize.ts';
import { buildMessages, type StepRecord } from './history.ts';
import { ResponseParseError, type CoordinateMode } from './parse-response.ts';
import { responseToActions } from './response-actions.ts';
import type { PromptVariant } from './prompt.ts';
import type { Agent, StepPrediction } from '../agent.ts';

export interface UITarsConfig {
  /** 'relative' for UI-TARS-2B / v1 (0-1000), 'absolute' for UI-TARS-1.5 (smart-resized pixels). */
  coordinates: 'relative' | 'absolute';
  historyN: number;
  maxTrajectoryLength: number;
  callUserTolerance: number;
  maxTries: number;
  temperature: number;
  topP?: number;
  maxTokens: number;
  frequencyPenalty: number;
  promptVariant: PromptVariant;
  /** smart_resize bounds of the model (UI-TARS-1.5 absolute coordinates live in that frame). */
  minPixels: number;
  maxPixels: number;
}

/** ARPO's effective settings (its CLI sampling flags never reached the request). */
export const ARPO_UITARS: UITarsConfig = {
  coordinates: 'relative',
  historyN: 15,
  maxTrajectoryLength: 15,
  callUserTolerance: 3,
  maxTries: 3,
  temperature: 0,
  maxTokens: 4096,
  frequencyPenalty: 1,
  promptVariant: 'eval',
  minPixels: 100 * 28 * 28,
  maxPixels: 16384 * 28 * 28,
};

/** The model's text ("client error" when every try failed), actions and per-call details. */
export type Prediction = StepPrediction & { calls: NonNullable<StepPrediction['calls']> };

/** Width and height from a PNG's IHDR chunk. */
export function pngSize(png: Uint8Array): { width: number; height: number } {
  const b = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  if (b.length < 24 || b.readUInt32BE(12) !== 0x49484452) throw new Error('screenshot is not a PNG');
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

export class UITarsAgent implements Agent {
  private history: StepRecord[] = [];
  private callUserCount = 0;

  constructor(
    private readonly client: ModelClient,
    readonly config: UITarsConfig,
  ) {}

  reset(): void {
    this.history = [];
    this.callUserCount = 0;
  }

  get steps(): number {
    return this.history.length;
  }

  async predict(instruction: string, screenshot: Uint8Array): Promise<Prediction> {
    const cfg = this.config;
    const { width, height } = pngSize(screenshot);
    const coords: CoordinateMode =
      cfg.coordinates === 'relative'
        ? { kind: 'relative', factor: 1000 }
        : (() => {
            const [h, w] = smartResize(height, width, 28, cfg.minPixels, cfg.maxPixels);
            return { kind: 'absolute' as const, width: w, height: h };
          })();
    const messages = buildMessages(instruction, this.history, screenshot, { historyN: cfg.historyN, promptVariant: cfg.promptVariant });
    const calls: Prediction['calls'] = [];
    let temperature = cfg.temperature;
    for (let attempt = 0; attempt < cfg.maxTries; attempt++) {
      let text: string;
      try {
        const c = await this.client.chat(messages, {
          temperature,
          maxTokens: cfg.maxTokens,
          frequencyPenalty: cfg.frequencyPenalty,
          ...(cfg.topP !== undefined ? { topP: cfg.topP } : {}),
        });
        calls.push({
          latencyMs: c.latencyMs,
          promptTokens: c.promptTokens,
          completionTokens: c.completionTokens,
          ...(c.retries ? { retries: c.retries, retryWaitMs: c.retryWaitMs, ...(c.retryError ? { retryError: c.retryError } : {}) } : {}),
        });
        text = c.content.trim();
      } catch (err) {
        if (!(err instanceof ModelRequestError)) throw err; // outages are the runner's business
        calls.push({ latencyMs: 0, promptTokens: 0, completionTokens: 0, error: err.message });
        continue;
      }
      try {
        const step = responseToActions(text, coords, { width, height }, () =>
          ++this.callUserCount <= cfg.callUserTolerance ? 'WAIT' : 'FAIL',
        );
        this.history.push({ screenshot, response: text });
        const warnings = cfg.coordinates === 'relative' ? relativeRangeWarnings(text) : [];
        const extra = warnings.length ? { warnings } : {};
        if (!step.special && this.history.length >= cfg.maxTrajectoryLength) return { prediction: text, actions: ['FAIL'], calls, ...extra };
        return { prediction: text, actions: step.actions, calls, ...extra };
      } catch (err) {
        if (!(err instanceof ResponseParseError)) throw err;
        calls[calls.length - 1]!.error = `parse: ${err.message}`;
        temperature = 1;
      }
    }
    // Every try failed: unparsable answers, or 4xx from the model server (the request's fault).
    const gaveUp = calls.some((c) => c.error !== undefined && !c.error.startsWith('parse:')) ? 'model' : 'parse';
    return { prediction: 'client error', actions: ['DONE'], calls, gaveUp };
  }
}

/**
 * Coordinates outside 0..1000 in a response read as relative: the model most likely writes
 * absolute pixels (UI-TARS-1.5 / Qwen2.5-VL) and --coordinates should be absolute.
 */
export function relativeRangeWarnings(text: string): string[] {
  const at = text.lastIndexOf('Action:');
  const action = at < 0 ? text : text.slice(at);
  const out: string[] = [];
  for (const m of action.matchAll(/\(\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)(?:\s*,\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?))?\s*\)/g)) {
    const nums = m.slice(1).filter((v): v is string => v !== undefined).map(Number);
    if (nums.some((n) => n < 0 || n > 1000)) {
      out.push(`coordinates ${m[0]} outside 0..1000 in relative mode: likely a coordinate-mode mismatch (try --coordinates absolute)`);
    }
  }
  return out;
}
