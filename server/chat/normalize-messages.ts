/**
 * OpenAI chat messages -> what the chat template renders, plus the images in prompt order.
 * Images become `{type: 'image'}` parts (the template writes <|vision_start|><|image_pad|><|vision_end|>).
 */
import { invalidRequest } from '../api/errors.ts';
import type { ChatMessage } from '../api/schemas/chat-completions.ts';
import type { TemplateMessage, TemplatePart } from '../model/tokenizer.ts';

export interface NormalizedChat {
  messages: TemplateMessage[];
  /** Image URLs in the order the model will see them. */
  imageUrls: string[];
}

export function normalizeMessages(messages: ChatMessage[]): NormalizedChat {
  const imageUrls: string[] = [];
  const out: TemplateMessage[] = messages.map((m, i) => {
    const param = `messages[${i}].content`;
    if (m.content === null || m.content === '' || (Array.isArray(m.content) && m.content.length === 0)) {
      // An assistant turn may be empty (a step that said nothing); a user or system turn may not.
      if (m.role === 'assistant') return { role: m.role, content: '' };
      throw invalidRequest(`${param} is empty: a ${m.role} message needs text or an image`, param);
    }
    if (typeof m.content === 'string') return { role: m.role, content: m.content };
    const parts: TemplatePart[] = m.content.map((part) => {
      if (part.type === 'text') return { type: 'text', text: part.text };
      imageUrls.push(part.image_url.url);
      return { type: 'image' };
    });
    return { role: m.role, content: parts };
  });
  return { messages: out, imageUrls };
}

/** The same chat without its `count` oldest images (their parts are removed). */
export function dropOldestImages(chat: NormalizedChat, count: number): NormalizedChat {
  if (count <= 0) return chat;
  let toDrop = count;
  const messages = chat.messages.map((m): TemplateMessage => {
    if (typeof m.content === 'string' || toDrop === 0) return m;
    const content = m.content.filter((p) => {
      if (p.type !== 'image' || toDrop === 0) return true;
      toDrop--;
      return false;
    });
    return { role: m.role, content };
  });
  return { messages, imageUrls: chat.imageUrls.slice(count) };
}
