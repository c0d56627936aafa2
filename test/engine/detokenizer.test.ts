/** Incremental detokenisation with the generated checkpoint's real byte-level BPE tokenizer. */
import t from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { IncrementalDetokenizer } from '../../server/engine/detokenizer.ts';
import { openCheckpoint } from '../../server/model/checkpoint/checkpoint.ts';
import { ensureTinyCheckpoint } from '../../server/model/checkpoint/tiny.ts';
import { ChatTokenizer } from '../../server/model/tokenizer.ts';

const ck = await openCheckpoint(await ensureTinyCheckpoint());
const tok = ChatTokenizer.fromFiles(ck.files);

function stream(ids: number[], skip: boolean): string[] {
  const d = new IncrementalDetokenizer(tok, skip);
  const deltas = ids.map((id) => d.push(id));
  deltas.push(d.flush());
  return deltas;
}

t.test('deltas add up to the full decode, multi-byte characters included', async (t) => {
  const text = 'Thought: the “OK” button — 確認 😀 is at the bottom.\nAction: click(start_box=\'(500,300)\')';
  const ids = tok.encode(text);
  const deltas = stream(ids, true);
  t.equal(deltas.join(''), text);
  t.equal(deltas.join(''), tok.decode(ids, true));
  t.notOk(deltas.some((d) => d.includes('\uFFFD')), 'no replacement character is ever emitted');
  t.ok(deltas.filter((d) => d === '').length > 0, 'bytes of an unfinished character are held back');
});

t.test('skip_special_tokens drops <|box_start|> and friends; off keeps them', async (t) => {
  const text = 'Action: click(start_box=\'<|box_start|>(12,34)<|box_end|>\')<|im_end|>';
  const ids = tok.encode(text);
  t.ok(ids.includes(tok.tokenId('<|box_start|>')!), 'special tokens are single ids');
  t.equal(stream(ids, true).join(''), "Action: click(start_box='(12,34)')");
  t.equal(stream(ids, false).join(''), text);
});

t.test('the chat template renders through the checkpoint\'s own template', async (t) => {
  const template = readFileSync(path.join(ck.dir, 'tokenizer_config.json'), 'utf8');
  t.match(template, /chat_template/);
  const prompt = tok.renderChat([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Go' }] }]);
  t.equal(
    prompt,
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Go<|im_end|>\n<|im_start|>assistant\n',
  );
});
