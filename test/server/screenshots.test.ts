/**
 * Fifteen distinct full-resolution screenshots in one request (a body of tens of MB) under the
 * default settings: the body fits the default limit, the context cap drops the oldest images
 * and reports them, and image token counts follow the grid arithmetic (1920x1080 -> smart
 * 1932x1092 -> 69 x 39 = 2,691 tokens; the fixed 800x450 box -> 812x448 -> 29 x 16 = 464).
 */
import t from 'tap';
import { defaultServerConfig } from '../../server/config.ts';
import { dataUrl, http, imagePart, MODEL, screenshotPng, startTestServer } from '../helpers/server.ts';

const SMART_TOKENS = 2691;
const FIXED_TOKENS = 464;
const server = await startTestServer(t); // the defaults: 128 MiB body, 16 images, max_model_len 32768
const chatUrl = `${server.url}/v1/chat/completions`;
// A little pixel noise makes each PNG about 2 MB, as a busy desktop screenshot can be.
const urls = await Promise.all(Array.from({ length: 15 }, (_, i) => screenshotPng(100 + i, 1920, 1080, 2).then((png) => dataUrl(png))));

interface Answer {
  choices: { message: { content: string } }[];
  usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details: { image_tokens: number } };
  images: { original: number[]; resized: number[]; tokens: number }[];
  images_dropped: number;
}

const request = (images: string[], extra: Record<string, unknown> = {}) => ({
  model: MODEL,
  messages: [
    { role: 'system', content: 'You are a GUI agent.' },
    { role: 'user', content: [...images.map(imagePart), { type: 'text', text: 'What changed between the screenshots? Click it.' }] },
  ],
  max_tokens: 6,
  temperature: 0,
  ...extra,
});

t.test('distinct images', async (t) => {
  t.equal(new Set(urls).size, 15);
});

let kept = 0;
let smartAnswer: Answer | undefined;

t.test('15 screenshots fit the default body limit; the oldest that do not fit the context are dropped', async (t) => {
  const body = JSON.stringify(request(urls));
  const mib = body.length / 1024 / 1024;
  t.comment(`request body ${mib.toFixed(1)} MiB`);
  t.ok(mib > 20 && mib < defaultServerConfig().bodyLimitMiB, 'tens of MB, under the default limit');
  const res = await http(chatUrl, 'POST', body);
  t.equal(res.status, 200, res.status === 200 ? 'served' : res.text.slice(0, 300));
  const a = res.json as Answer;
  smartAnswer = a;
  kept = a.images.length;
  const maxModelLen = server.engine.info!.maxModelLen;
  t.equal(maxModelLen, 32768, "the tiny checkpoint's max_position_embeddings");
  t.ok(kept > 0 && kept < 15, `some images kept (${kept}), some dropped`);
  t.equal(a.images_dropped, 15 - kept, 'images_dropped reports them');
  t.equal(res.headers['x-images-dropped'], String(15 - kept), 'so does x-images-dropped');
  for (const im of a.images) t.same(im, { original: [1920, 1080], resized: [1932, 1092], tokens: SMART_TOKENS });
  t.equal(a.usage.prompt_tokens_details.image_tokens, kept * SMART_TOKENS, 'image tokens = kept x 2691');
  t.ok(a.usage.prompt_tokens + 1 <= maxModelLen, 'the prompt fits with room for a token');
  // One more image (its tokens plus <|vision_start|><|vision_end|>) would not have fitted.
  t.ok(a.usage.prompt_tokens + SMART_TOKENS + 2 + 1 > maxModelLen, 'as many images as fit are kept');
  t.ok(a.usage.completion_tokens >= 1);
});

t.test('the dropped images were the oldest: same prompt and answer as sending only the newest ones', async (t) => {
  t.ok(smartAnswer, 'the previous test answered');
  const res = await http(chatUrl, 'POST', request(urls.slice(15 - kept)));
  t.equal(res.status, 200);
  const a = res.json as Answer;
  t.equal(a.images_dropped, 0);
  t.equal(a.usage.prompt_tokens, smartAnswer!.usage.prompt_tokens);
  t.equal(a.choices[0]!.message.content, smartAnswer!.choices[0]!.message.content, 'same greedy text');
});

t.test("the fixed '800x450' policy (per request): 464 tokens each, all 15 fit", async (t) => {
  const res = await http(chatUrl, 'POST', request(urls, { mm_processor_kwargs: { size: '800x450' } }));
  t.equal(res.status, 200);
  const a = res.json as Answer;
  t.equal(a.images_dropped, 0);
  t.equal(res.headers['x-images-dropped'], '0');
  t.equal(a.images.length, 15);
  for (const im of a.images) t.same(im, { original: [1920, 1080], resized: [812, 448], tokens: FIXED_TOKENS });
  t.equal(a.usage.prompt_tokens_details.image_tokens, 15 * FIXED_TOKENS);
});

t.test("the fixed '800x450' policy (server setting) and /tokenize agree with the grid arithmetic", async (t) => {
  const fixed = await startTestServer(t, { imagePolicy: '800x450' });
  const res = await http(`${fixed.url}/tokenize`, 'POST', { messages: request(urls.slice(0, 3)).messages });
  t.equal(res.status, 200);
  const tok = res.json as { count: number; image_tokens: number; text_tokens: number; images: { tokens: number; resized: number[] }[] };
  t.equal(tok.image_tokens, 3 * FIXED_TOKENS);
  t.same(tok.images.map((im) => [im.resized, im.tokens]), Array.from({ length: 3 }, () => [[812, 448], FIXED_TOKENS]));
  t.equal(tok.count, tok.text_tokens + tok.image_tokens);
  // The same messages under the smart policy: only the image tokens differ.
  const smart = await http(`${server.url}/tokenize`, 'POST', { messages: request(urls.slice(0, 3)).messages });
  const s = smart.json as { count: number; image_tokens: number; text_tokens: number };
  t.equal(s.image_tokens, 3 * SMART_TOKENS);
  t.equal(s.text_tokens, tok.text_tokens);
});
