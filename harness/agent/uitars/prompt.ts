/**
 * The UI-TARS prompts, byte for byte as ARPO's OSWorld evaluation sends them (the model was
 * trained on these strings). The data file is a copy of shared/osworld/uitars-prompts.json,
 * whose `source` field names where each string comes from.
 */
import { readFileSync } from 'node:fs';

interface PromptFile {
  system: string;
  eval_user_prompt: string;
  train_user_prompt: string;
}

const PROMPTS = JSON.parse(readFileSync(new URL('./uitars-prompts.json', import.meta.url), 'utf8')) as PromptFile;

export type PromptVariant = 'eval' | 'train';

export const UITARS_SYSTEM_PROMPT = PROMPTS.system;

/** The user prompt with the task's instruction filled in. */
export function renderUserPrompt(instruction: string, variant: PromptVariant = 'eval'): string {
  const template = variant === 'eval' ? PROMPTS.eval_user_prompt : PROMPTS.train_user_prompt;
  // A function replacement: `$` sequences in the instruction stay literal.
  return template.replace('{instruction}', () => instruction);
}
