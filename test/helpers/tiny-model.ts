/** Loads the generated tiny checkpoint through the real path (checkpoint -> ONNX graphs -> sessions). */
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { ENGINE_DEFAULTS } from '../../server/config.ts';
import { ensureTinyCheckpoint, REPO_ROOT } from '../../server/model/checkpoint/tiny.ts';
import { loadModel, type LoadedModel, type ModelOptions } from '../../server/model/load-model.ts';
import type { TemplateMessage, TemplatePart } from '../../server/model/tokenizer.ts';
import type { DoneEvent, EngineRequest, TokenEvent } from '../../server/engine/request.ts';
import { GREEDY } from '../../server/engine/sampler.ts';
import { prepareImage, type PreparedImage } from '../../server/vision/prepare-image.ts';
import type { ResizePolicy } from '../../server/vision/smart-resize.ts';

export const FIXTURE_SCREENSHOT = path.join(REPO_ROOT, 'test/fixtures/images/screenshot-desktop-1920x1080.png');

export async function loadTinyModel(opts: Partial<ModelOptions> = {}): Promise<LoadedModel> {
  const dir = await ensureTinyCheckpoint();
  return loadModel(dir, { ...ENGINE_DEFAULTS, maxBatch: 4, maxModelLen: 4096, ...opts });
}

export async function prepareFile(model: LoadedModel, file: string, policy: ResizePolicy): Promise<PreparedImage> {
  return prepareImage(readFileSync(file), policy, model.checkpoint.config.preprocessor);
}

/** Prompt ids for one user turn holding the images (in order) and then the text. */
export function userPrompt(model: LoadedModel, text: string, images: number, system?: string): number[] {
  const parts: TemplatePart[] = [...Array.from({ length: images }, (): TemplatePart => ({ type: 'image' })), { type: 'text', text }];
  const messages: TemplateMessage[] = [...(system ? [{ role: 'system', content: system }] : []), { role: 'user', content: parts }];
  return model.tokenizer.encode(model.tokenizer.renderChat(messages));
}

export function greedyRequest(promptIds: number[], images: PreparedImage[], maxTokens: number, extra: Partial<EngineRequest> = {}): EngineRequest {
  return {
    promptIds,
    images: images.map((im) => ({ patches: im.patches, gridThw: im.gridThw })),
    sampling: GREEDY,
    maxTokens,
    stop: [],
    stopTokenIds: [],
    topLogprobs: 5,
    skipSpecialTokens: true,
    ...extra,
  };
}

export interface Collected {
  tokens: TokenEvent[];
  done: DoneEvent;
}

export async function collect(events: AsyncIterable<TokenEvent | DoneEvent>): Promise<Collected> {
  const tokens: TokenEvent[] = [];
  let done: DoneEvent | undefined;
  for await (const ev of events) {
    if (ev.type === 'token') tokens.push(ev);
    else done = ev;
  }
  if (!done) throw new Error('no done event');
  return { tokens, done };
}
