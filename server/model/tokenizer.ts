/**
 * The checkpoint's tokenizer and chat template, through Hugging Face's own JS
 * libraries (@huggingface/tokenizers for tokenizer.json, @huggingface/jinja for the
 * template), so tokenisation and prompts match transformers.
 */
import { readFileSync } from 'node:fs';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';

/** Chat messages as the template sees them (OpenAI shape after normalising). */
export type TemplatePart = { type: 'text'; text: string } | { type: 'image' };
export interface TemplateMessage {
  role: string;
  content: string | TemplatePart[];
}

/** The files of a checkpoint this needs (CheckpointFiles from checkpoint.ts has them). */
export interface TokenizerFiles {
  tokenizerJson: string;
  tokenizerConfig: string;
  chatTemplate: string;
}

export class ChatTokenizer {
  private readonly tokenizer: Tokenizer;
  private readonly template: Template;
  private readonly specialIds: Set<number>;
  readonly vocabSize: number;

  constructor(tokenizerJson: object, tokenizerConfig: object, chatTemplate: string) {
    this.tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    this.template = new Template(chatTemplate);
    this.specialIds = new Set();
    for (const [id, token] of this.tokenizer.get_added_tokens_decoder()) {
      if (token.special) this.specialIds.add(id);
    }
    this.vocabSize = this.tokenizer.get_vocab(true).size;
  }

  static fromFiles(files: TokenizerFiles): ChatTokenizer {
    const json = JSON.parse(readFileSync(files.tokenizerJson, 'utf8')) as object;
    const config = JSON.parse(readFileSync(files.tokenizerConfig, 'utf8')) as object;
    return new ChatTokenizer(json, config, files.chatTemplate);
  }

  /** The prompt text for a conversation; one <|vision_start|><|image_pad|><|vision_end|> per image. */
  renderChat(messages: TemplateMessage[], addGenerationPrompt = true): string {
    return this.template.render({ messages, add_generation_prompt: addGenerationPrompt });
  }

  encode(text: string): number[] {
    // The chat template already holds every special token; add none.
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[], skipSpecialTokens: boolean): string {
    return this.tokenizer.decode(ids as number[], {
      skip_special_tokens: skipSpecialTokens,
      clean_up_tokenization_spaces: false,
    });
  }

  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tokenizer.id_to_token(id);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }
}
