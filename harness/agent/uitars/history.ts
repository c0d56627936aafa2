/**
 * The messages ARPO's UI-TARS agent sends at each step:
 *
 *   system: "You are a helpful assistant."
 *   user:   <the rendered UI-TARS prompt with the instruction>
 *   for each earlier step i:  [user: screenshot i, if it is among the newest history_n]  assistant: response i
 *   user:   the current screenshot
 *
 * Earlier responses are replayed with <|box_start|>/<|box_end|> put back around their
 * coordinates (the server strips special tokens from what it returns).
 */
import { renderUserPrompt, UITARS_SYSTEM_PROMPT, type PromptVariant } from './prompt.ts';

export type ChatPart = { type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string } };
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: ChatPart[];
}

export interface StepRecord {
  /** The screenshot the model saw at that step (PNG bytes). */
  screenshot: Uint8Array;
  /** The model's raw response text. */
  response: string;
}

export const pngDataUrl = (png: Uint8Array): string => `data:image/png;base64,${Buffer.from(png).toString('base64')}`;

/**
 * ARPO's add_box_token: wraps start_box/end_box coordinates written as '(x,y)' in box tokens.
 * Like ARPO's, a pair written with a space after the comma is left as it is.
 */
export function addBoxTokens(response: string): string {
  if (!response.includes('Action: ') || !response.includes('start_box=')) return response;
  const at = response.lastIndexOf('Action: ');
  const prefix = response.slice(0, at);
  const actions = response
    .slice(at + 'Action: '.length)
    .split('\n\n')
    .map((a) =>
      a.replace(/(start_box|end_box)='\((\d+),(\d+)\)'/g, (_, kind: string, x: string, y: string) => `${kind}='<|box_start|>(${x},${y})<|box_end|>'`),
    );
  return `${prefix}Action: ${actions.join('\n\n')}`;
}

export interface HistoryOptions {
  /** Screenshots sent at most (the current one included); ARPO: 15. */
  historyN: number;
  promptVariant?: PromptVariant;
}

export function buildMessages(instruction: string, history: readonly StepRecord[], current: Uint8Array, opts: HistoryOptions): ChatMessage[] {
  const messages: ChatMessage[] = [
    { role: 'system', content: [{ type: 'text', text: UITARS_SYSTEM_PROMPT }] },
    { role: 'user', content: [{ type: 'text', text: renderUserPrompt(instruction, opts.promptVariant) }] },
  ];
  const k = history.length;
  history.forEach((step, i) => {
    if (i + opts.historyN > k) messages.push({ role: 'user', content: [{ type: 'image_url', image_url: { url: pngDataUrl(step.screenshot) } }] });
    messages.push({ role: 'assistant', content: [{ type: 'text', text: addBoxTokens(step.response) }] });
  });
  messages.push({ role: 'user', content: [{ type: 'image_url', image_url: { url: pngDataUrl(current) } }] });
  return messages;
}
