import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { ensureTinyCheckpoint } from '../../../server/model/checkpoint/tiny.ts';
import { openCheckpoint } from '../../../server/model/checkpoint/checkpoint.ts';
import { generatedTokenizer } from '../../../server/model/checkpoint/generate.ts';
import { QWEN2_VL_SPECIAL_TOKENS, pretokenize } from '../../../server/model/checkpoint/tokenizer-gen.ts';

const dir = await ensureTinyCheckpoint();
const ck = await openCheckpoint(dir);
const tokJson = JSON.parse(fs.readFileSync(ck.files.tokenizerJson, 'utf8'));
const tokCfg = JSON.parse(fs.readFileSync(ck.files.tokenizerConfig, 'utf8'));
const tok = new Tokenizer(tokJson, tokCfg);

const samples = [
  'Hello world',
  "Thought: I'll click the Save button in the toolbar.\nAction: click(start_box='<|box_start|>(235,412)<|box_end|>')",
  "Action: type(content='report_final.xlsx\\n')",
  'Ünïcödé — ñ, 世界, emoji 🙂👍🏽, tabs\tand  double  spaces   \n\n\r\n end  ',
  "It's, we've, THEY'LL, i'M, you'D",
  'a',
  ' leading space',
  '12345 + 678 = 13023',
];

/** Byte-level BPE applied the textbook way, from tokenizer.json's own vocab and merges. */
function referenceEncode(text: string): number[] {
  const vocab = tokJson.model.vocab as Record<string, number>;
  const ranks = new Map<string, number>();
  (tokJson.model.merges as string[]).forEach((m, i) => ranks.set(m, i));
  const ids: number[] = [];
  for (const word of pretokenize(text)) {
    let syms = [...word];
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < syms.length; i++) {
        const r = ranks.get(`${syms[i]} ${syms[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const [a, b] = [syms[best]!, syms[best + 1]!];
      const next: string[] = [];
      for (let i = 0; i < syms.length; i++) {
        if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) {
          next.push(a + b);
          i++;
        } else next.push(syms[i]!);
      }
      syms = next;
    }
    for (const s of syms) ids.push(vocab[s]!);
  }
  return ids;
}

t.test('tokenizer.json is Qwen2 format', async (tt) => {
  tt.same(tokJson.normalizer, { type: 'NFC' });
  tt.equal(tokJson.pre_tokenizer.type, 'Sequence');
  tt.equal(tokJson.pre_tokenizer.pretokenizers[0].type, 'Split');
  tt.equal(tokJson.pre_tokenizer.pretokenizers[0].behavior, 'Isolated');
  tt.equal(
    tokJson.pre_tokenizer.pretokenizers[0].pattern.Regex,
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  );
  tt.same(tokJson.pre_tokenizer.pretokenizers[1], { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false });
  tt.equal(tokJson.decoder.type, 'ByteLevel');
  tt.equal(tokJson.model.type, 'BPE');
  tt.equal(tokJson.model.byte_fallback, false);
  tt.equal(tokJson.model.ignore_merges, false);
  const vocabSize = Object.keys(tokJson.model.vocab).length;
  tt.equal(vocabSize, 656);
  tt.equal(tokJson.model.merges.length, 400);
  tt.equal(tokJson.model.vocab['!'], 0, 'byte-level alphabet in GPT-2 order');
  tt.equal(tokJson.model.vocab['Ġ'], 220, 'space is Ġ = 220 as in Qwen2');
  tt.same(
    tokJson.added_tokens.map((a: { content: string }) => a.content),
    [...QWEN2_VL_SPECIAL_TOKENS],
  );
  tt.ok(tokJson.added_tokens.every((a: { id: number; special: boolean }, i: number) => a.id === vocabSize + i && a.special));
  tt.equal(tokCfg.eos_token, '<|im_end|>');
  tt.equal(tokCfg.pad_token, '<|endoftext|>');
  tt.equal(Object.keys(tokCfg.added_tokens_decoder).length, 14);
  tt.ok(ck.config.text.vocabSize >= vocabSize + 14);
  tt.same(ck.config.tokens.eos, [tok.token_to_id('<|im_end|>'), tok.token_to_id('<|endoftext|>')]);
  tt.equal(ck.config.tokens.imagePad, tok.token_to_id('<|image_pad|>'));
  tt.equal(ck.config.tokens.visionStart, tok.token_to_id('<|vision_start|>'));
});

t.test('round trip and BPE equal to the reference', async (tt) => {
  for (const s of samples) {
    const ids = tok.encode(s).ids;
    tt.equal(tok.decode(ids), s.normalize('NFC'), `round trip ${JSON.stringify(s)}`);
    if (!s.includes('<|')) tt.same(ids, referenceEncode(s), `reference BPE ${JSON.stringify(s)}`);
  }
  const ids = tok.encode('Thought: click the button').ids;
  tt.ok(ids.length <= 6, `trained merges make common words single tokens (${ids.length} tokens)`);
  tt.equal(tok.decode(tok.encode('Thought:').ids.slice(0, 1)), 'Thought');
});

t.test('every special token encodes to its single id and decodes back', async (tt) => {
  QWEN2_VL_SPECIAL_TOKENS.forEach((s, i) => {
    const id = 656 + i;
    tt.same(tok.encode(s).ids, [id], s);
    tt.equal(tok.decode([id]), s);
    tt.equal(tok.decode([id], { skip_special_tokens: true }), '');
  });
  const text = '<|im_start|>user\n<|vision_start|><|image_pad|><|image_pad|><|vision_end|>hi<|im_end|>';
  const ids = tok.encode(text).ids;
  tt.same(ids.slice(0, 1), [657]);
  tt.same(ids.filter((i: number) => i === 668).length, 2);
  tt.equal(tok.decode(ids), text);
  tt.equal(
    tok.decode(tok.encode("click(start_box='<|box_start|>(1,2)<|box_end|>')").ids, { skip_special_tokens: true }),
    "click(start_box='(1,2)')",
    'skip_special_tokens strips box markers',
  );
});

t.test('chat template renders Qwen2-VL prompts', async (tt) => {
  const tpl = new Template(ck.files.chatTemplate);
  const messages = [
    { role: 'system', content: 'You are a helpful assistant.' },
    {
      role: 'user',
      content: [
        { type: 'text', text: 'Click the Save button.' },
        { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
      ],
    },
    { role: 'assistant', content: "Thought: The button is at the top.\nAction: click(start_box='(10,20)')" },
    { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Next?' }] },
  ];
  tt.equal(
    tpl.render({ messages, add_generation_prompt: true }),
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
      '<|im_start|>user\nClick the Save button.<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n' +
      "<|im_start|>assistant\nThought: The button is at the top.\nAction: click(start_box='(10,20)')<|im_end|>\n" +
      '<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Next?<|im_end|>\n' +
      '<|im_start|>assistant\n',
  );
  tt.equal(
    tpl.render({ messages: [{ role: 'user', content: 'hi' }], add_generation_prompt: false }),
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n',
    'default system prompt when the first message is not system',
  );
  tt.equal(
    tpl.render({
      messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'image' }, { type: 'video' }] }],
      add_generation_prompt: true,
      add_vision_id: true,
    }),
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n' +
      'Picture 1: <|vision_start|><|image_pad|><|vision_end|>Picture 2: <|vision_start|><|image_pad|><|vision_end|>' +
      'Video 1: <|vision_start|><|video_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n',
  );
  // The rendered prompt tokenizes with each marker a single special token
  const prompt = tpl.render({ messages, add_generation_prompt: true });
  const ids = tok.encode(prompt).ids;
  tt.equal(ids.filter((i: number) => i === ck.config.tokens.imagePad).length, 2);
  tt.equal(tok.decode(ids), prompt);
});

t.test('full-size tokenizer: 151643 BPE tokens, specials at 151643..151656', async (tt) => {
  const full = generatedTokenizer('full');
  tt.equal(full.baseVocabSize, 151643);
  tt.equal(Object.keys(full.tokenizerJson.model as object).length > 0, true);
  const model = full.tokenizerJson.model as { vocab: Record<string, number>; merges: string[] };
  tt.equal(Object.keys(model.vocab).length, 151643);
  tt.equal(model.merges.length, 151643 - 256);
  tt.same(full.specialIds, {
    '<|endoftext|>': 151643,
    '<|im_start|>': 151644,
    '<|im_end|>': 151645,
    '<|object_ref_start|>': 151646,
    '<|object_ref_end|>': 151647,
    '<|box_start|>': 151648,
    '<|box_end|>': 151649,
    '<|quad_start|>': 151650,
    '<|quad_end|>': 151651,
    '<|vision_start|>': 151652,
    '<|vision_end|>': 151653,
    '<|vision_pad|>': 151654,
    '<|image_pad|>': 151655,
    '<|video_pad|>': 151656,
  });
  const ftok = new Tokenizer(full.tokenizerJson, full.tokenizerConfig);
  for (const s of samples) tt.equal(ftok.decode(ftok.encode(s).ids), s.normalize('NFC'));
  tt.same(ftok.encode('<|image_pad|>').ids, [151655]);
  // vocab strings are unique and every merge's parts exist
  const ids = new Set(Object.values(model.vocab));
  tt.equal(ids.size, 151643);
  const bad = model.merges.find((m) => {
    const [a, b] = m.split(' ') as [string, string];
    return model.vocab[a] === undefined || model.vocab[b] === undefined || model.vocab[a + b] === undefined;
  });
  tt.equal(bad, undefined, 'every merge refers to vocab entries');
});

t.test('ensureTinyCheckpoint path', async (tt) => {
  tt.equal(path.basename(dir), 'tiny');
  tt.ok(dir.endsWith(path.join('.cache', 'checkpoints', 'tiny')));
});
