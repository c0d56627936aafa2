/**
 * Builds a real byte-level BPE tokenizer in Qwen2's tokenizer.json format for generated
 * checkpoints: NFC, Qwen2's split regex, byte-level alphabet, merges trained on a small
 * built-in corpus (and, for the full size, padded with synthetic merges up to Qwen2's
 * 151,643 base tokens), then Qwen2-VL's 14 special tokens after the base vocabulary.
 */
import { QWEN2_VL_CHAT_TEMPLATE } from './qwen2-vl-chat-template.ts';

/** Qwen2-VL's special tokens, in id order, directly after the base vocabulary. */
export const QWEN2_VL_SPECIAL_TOKENS = [
  '<|endoftext|>',
  '<|im_start|>',
  '<|im_end|>',
  '<|object_ref_start|>',
  '<|object_ref_end|>',
  '<|box_start|>',
  '<|box_end|>',
  '<|quad_start|>',
  '<|quad_end|>',
  '<|vision_start|>',
  '<|vision_end|>',
  '<|vision_pad|>',
  '<|image_pad|>',
  '<|video_pad|>',
] as const;

export type SpecialToken = (typeof QWEN2_VL_SPECIAL_TOKENS)[number];

/** Qwen2's pre-tokenizer regex, as it appears in tokenizer.json (Rust/Oniguruma syntax). */
export const QWEN2_SPLIT_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** The same regex in JS syntax (the case-insensitive group expanded). */
const QWEN2_SPLIT_JS =
  /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

/** Qwen2's base vocabulary size (ids below this are BPE tokens; specials start here). */
export const QWEN2_BASE_VOCAB = 151643;

/** GPT-2's byte -> printable unicode mapping, in its canonical order (printable bytes first). */
export function byteLevelAlphabet(): { order: number[]; byteToChar: string[] } {
  const order: number[] = [];
  for (let b = 33; b <= 126; b++) order.push(b);
  for (let b = 161; b <= 172; b++) order.push(b);
  for (let b = 174; b <= 255; b++) order.push(b);
  const byteToChar: string[] = new Array<string>(256);
  for (const b of order) byteToChar[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (byteToChar[b] === undefined) {
      byteToChar[b] = String.fromCharCode(256 + n++);
      order.push(b);
    }
  }
  return { order, byteToChar };
}

const ALPHABET = byteLevelAlphabet();

/** Text -> byte-level pre-tokens ("Ġhello" style), as the tokenizer's pre_tokenizer does. */
export function pretokenize(text: string): string[] {
  const out: string[] = [];
  const enc = new TextEncoder();
  for (const m of text.normalize('NFC').matchAll(QWEN2_SPLIT_JS)) {
    let s = '';
    for (const b of enc.encode(m[0])) s += ALPHABET.byteToChar[b]!;
    out.push(s);
  }
  return out;
}

export interface BpeModel {
  /** Token strings by id (base vocabulary only). */
  vocab: string[];
  /** Merges in rank order. */
  merges: [string, string][];
  /** How many merges were learned from the corpus (the rest are synthetic). */
  trainedMerges: number;
}

/**
 * Trains byte-level BPE merges on `corpus` until `targetMerges` merges or no pair occurs
 * twice, then pads with synthetic merges (token + letter) to exactly `targetMerges`.
 * Deterministic: ties go to the lexicographically smallest pair.
 */
export function trainBpe(corpus: string, targetMerges: number, maxTrained = targetMerges): BpeModel {
  const vocab: string[] = ALPHABET.order.map((b) => ALPHABET.byteToChar[b]!);
  const known = new Set(vocab);
  const merges: [string, string][] = [];

  const freq = new Map<string, number>();
  for (const w of pretokenize(corpus)) freq.set(w, (freq.get(w) ?? 0) + 1);
  const words: { syms: string[]; n: number }[] = [...freq.entries()]
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([w, n]) => ({ syms: [...w], n }));

  const SEP = '\u0000';
  while (merges.length < Math.min(targetMerges, maxTrained)) {
    const counts = new Map<string, number>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.syms.length; i++) {
        const k = w.syms[i]! + SEP + w.syms[i + 1]!;
        counts.set(k, (counts.get(k) ?? 0) + w.n);
      }
    }
    let best: string | undefined;
    let bestN = 1;
    for (const [k, n] of counts) {
      if (n > bestN || (n === bestN && best !== undefined && k < best)) {
        best = k;
        bestN = n;
      }
    }
    if (best === undefined) break;
    const [a, b] = best.split(SEP) as [string, string];
    const joined = a + b;
    merges.push([a, b]);
    if (!known.has(joined)) {
      known.add(joined);
      vocab.push(joined);
    }
    for (const w of words) {
      const s = w.syms;
      if (s.length < 2) continue;
      const next: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          next.push(joined);
          i++;
        } else next.push(s[i]!);
      }
      w.syms = next;
    }
  }
  const trainedMerges = merges.length;

  // Synthetic padding: extend tokens, in id order, by one lowercase letter or 'Ġ' (space).
  const letters = [...'etaoinshrdlcumwfgypbvkjxqz'].concat([ALPHABET.byteToChar[32]!]);
  for (let id = 0; merges.length < targetMerges; id++) {
    const t = vocab[id];
    if (t === undefined) throw new Error('BPE padding ran out of tokens');
    for (const l of letters) {
      if (merges.length >= targetMerges) break;
      const joined = t + l;
      if (known.has(joined)) continue;
      known.add(joined);
      vocab.push(joined);
      merges.push([t, l]);
    }
  }
  return { vocab, merges, trainedMerges };
}

export interface TokenizerFiles {
  /** tokenizer.json contents. */
  tokenizerJson: Record<string, unknown>;
  /** tokenizer_config.json contents. */
  tokenizerConfig: Record<string, unknown>;
  /** Number of BPE tokens (ids below it); specials follow. */
  baseVocabSize: number;
  /** Base vocabulary plus specials. */
  totalTokens: number;
  /** Id of each special token. */
  specialIds: Record<SpecialToken, number>;
}

const BYTE_LEVEL = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };

/** tokenizer.json + tokenizer_config.json in Qwen2-VL's format for a trained BPE model. */
export function buildTokenizerFiles(bpe: BpeModel, modelMaxLength = 32768): TokenizerFiles {
  const base = bpe.vocab.length;
  const vocab: Record<string, number> = {};
  bpe.vocab.forEach((t, i) => (vocab[t] = i));
  const specialIds = {} as Record<SpecialToken, number>;
  const addedTokens = QWEN2_VL_SPECIAL_TOKENS.map((content, i) => {
    specialIds[content] = base + i;
    return { id: base + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  });
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: QWEN2_SPLIT_PATTERN }, behavior: 'Isolated', invert: false },
        BYTE_LEVEL,
      ],
    },
    post_processor: BYTE_LEVEL,
    decoder: BYTE_LEVEL,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: bpe.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const addedTokensDecoder: Record<string, unknown> = {};
  for (const t of addedTokens) {
    addedTokensDecoder[String(t.id)] = {
      content: t.content,
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: true,
    };
  }
  const tokenizerConfig = {
    add_prefix_space: false,
    added_tokens_decoder: addedTokensDecoder,
    additional_special_tokens: QWEN2_VL_SPECIAL_TOKENS.filter((t) => t !== '<|endoftext|>'),
    bos_token: null,
    chat_template: QWEN2_VL_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    errors: 'replace',
    model_max_length: modelMaxLength,
    pad_token: '<|endoftext|>',
    padding_side: 'left',
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  };
  return { tokenizerJson, tokenizerConfig, baseVocabSize: base, totalTokens: base + addedTokens.length, specialIds };
}

/**
 * The built-in training corpus: plain English plus the shapes of GUI-agent prompts and
 * responses (UI-TARS's "Thought: ... Action: click(start_box=...)" format), so common
 * words and the action syntax get their own merges.
 */
export const BPE_CORPUS = [
  `You are a GUI agent. You are given a task and your action history, with screenshots. You need to perform the next action to complete the task.`,
  `## Output Format\n\`\`\`\nThought: ...\nAction: ...\n\`\`\`\n\n## Action Space\n`,
  `click(start_box='(x1,y1)')\nleft_double(start_box='(x1,y1)')\nright_single(start_box='(x1,y1)')\ndrag(start_box='(x1,y1)', end_box='(x3,y3)')\nhotkey(key='ctrl c')\ntype(content='xxx')\nscroll(start_box='(x1,y1)', direction='down')\nwait()\nfinished(content='done')`,
  `## Note\n- Use English in the Thought part.\n- Write a small plan and finally summarize your next action (with its target element) in one sentence in the Thought part.\n\n## User Instruction\n`,
  `Thought: The settings window is open. I need to find the display options, so I will click the Display entry in the left panel.\nAction: click(start_box='(235,412)')`,
  `Thought: The file menu is visible at the top left of the window. I should open it to find the Save As option.\nAction: click(start_box='(24,13)')`,
  `Thought: The text field for the file name is focused. I will type the new name and press enter to confirm.\nAction: type(content='report_final.xlsx\\n')`,
  `Thought: The page is longer than the screen, and the button I need is further down. I will scroll down to reveal it.\nAction: scroll(start_box='(500,600)', direction='down')`,
  `Thought: To copy the selected cells I will use the keyboard shortcut.\nAction: hotkey(key='ctrl c')`,
  `Thought: The task has been completed: the document is saved with the requested name in the Documents folder.\nAction: finished(content='The file was saved.')`,
  `Thought: The application is still loading, so I will wait for it to finish before doing anything else.\nAction: wait()`,
  `Thought: I need to open the image in the editor. I will double click the file icon on the desktop.\nAction: left_double(start_box='(88,144)')`,
  `Thought: A context menu is needed to rename the file, so I will right click on it.\nAction: right_single(start_box='(320,240)')`,
  `Thought: The slider controls the brightness. I will drag it to the right to increase the value.\nAction: drag(start_box='(410,300)', end_box='(620,300)')`,
  `Please open the spreadsheet, select the first column, sort the rows in ascending order and save the file. Change the font of the title to bold, set the page orientation to landscape and export the document as a PDF.`,
  `Open the browser and search for the weather in the city. Bookmark the current page, then open a new tab and go to the settings page. Turn off the notifications for this website and clear the browsing data from the last hour.`,
  `Install the extension from the store, then restart the browser. Set the default search engine, change the home page, and make the downloads folder ask where to save each file before downloading.`,
  `In the terminal, create a new directory called projects, move into it, and list the files. Then copy the configuration file from the home directory and open it in the text editor to change the line that sets the port number.`,
  `The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single step. It was the best of times, it was the worst of times; it was the age of wisdom, it was the age of foolishness.`,
  `Computers follow instructions written as programs. A program reads input, processes data, and writes output. The operating system manages memory, files, windows and devices, and the user interacts with it through the keyboard, the mouse and the screen.`,
  `The image shows a desktop with a taskbar at the bottom, several icons on the left side, and an open window in the center. The window has a title bar with close, minimize and maximize buttons, a menu bar, a toolbar and a status bar.`,
  `Email the presentation to the team, attach the latest version of the slides, and add a short message that says the meeting has been moved to Thursday at three in the afternoon. Mark the message as important and send it.`,
  `Numbers like 1, 2, 3, 10, 42, 100, 256, 1024 and 2025 appear in dates, prices, coordinates and sizes: 1920x1080, 800x450, (500,300), 12.5%, $19.99.`,
  `I'm sure it's fine; we've done this before, they'll agree and you'd see that the results don't change. Isn't that what she said? He's here, and we're ready.`,
  `def main():\n    items = [1, 2, 3]\n    for item in items:\n        print(item)\n    return 0\n\nif __name__ == "__main__":\n    main()\n`,
  `{"role": "user", "content": [{"type": "text", "text": "What is in this picture?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,"}}]}`,
  `The assistant answers questions, describes images, reads text from screenshots, and controls the computer to help the user complete tasks in the office suite, the web browser, the image editor, the media player and the mail client.`,
].join('\n\n');
