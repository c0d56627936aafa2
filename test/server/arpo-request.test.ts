/**
 * ARPO's request shape, as its UI-TARS agent sends it to vLLM: a system prompt, the UI-TARS
 * computer-use prompt, then the history as user screenshots (1920x1080 PNG data URLs) with the
 * assistant's answers between them; frequency_penalty 1, max_tokens 4096. Served under the
 * configured caps: at most 3 images (older ones dropped and reported) and max_tokens clamped
 * to what max_model_len leaves after the prompt (a second server whose max_model_len leaves
 * only a few tokens, so that the clamp, not EOS, ends the sample).
 */
import t from 'tap';
import { dataUrl, http, imagePart, MODEL, screenshotPng, startTestServer } from '../helpers/server.ts';

const server = await startTestServer(t, { maxImagesPerRequest: 3 });

const UI_TARS_PROMPT = `You are a GUI agent. You are given a task and your action history, with screenshots. You need to perform the next action to complete the task.

## Output Format
\`\`\`
Thought: ...
Action: ...
\`\`\`

## Action Space
click(start_box='<|box_start|>(x1,y1)<|box_end|>')
left_double(start_box='<|box_start|>(x1,y1)<|box_end|>')
right_single(start_box='<|box_start|>(x1,y1)<|box_end|>')
drag(start_box='<|box_start|>(x1,y1)<|box_end|>', end_box='<|box_start|>(x3,y3)<|box_end|>')
hotkey(key='')
type(content='') #If you want to submit your input, use "\\n" at the end of \`content\`.
scroll(start_box='<|box_start|>(x1,y1)<|box_end|>', direction='down or up or right or left')
wait() #Sleep for 5s and take a screenshot to check for any changes.
finished()
call_user() # Submit the task and call the user when the task is unsolvable, or when you need the user's help.

## Note
- Use English in \`Thought\` part.
- Summarize your next action (with its target element) in one sentence in \`Thought\` part.

## User Instruction
Open the terminal and list the files in the home directory.`;

const answers = [
  "Thought: I need to open the terminal first. The Activities button is in the top left corner.\nAction: click(start_box='<|box_start|>(24,14)<|box_end|>')",
  "Thought: The search field is open; I type the name of the application.\nAction: type(content='terminal')",
  "Thought: The Terminal icon appears in the results; I open it.\nAction: click(start_box='<|box_start|>(480,302)<|box_end|>')",
  "Thought: The terminal is open. I list the files.\nAction: type(content='ls ~\\n')",
];

const screenshots = await Promise.all([0, 1, 2, 3, 4].map((i) => screenshotPng(200 + i).then((png) => dataUrl(png))));
const messages: unknown[] = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: [{ type: 'text', text: UI_TARS_PROMPT }] },
];
screenshots.forEach((url, i) => {
  messages.push({ role: 'user', content: [imagePart(url)] });
  if (answers[i]) messages.push({ role: 'assistant', content: [{ type: 'text', text: answers[i] }] });
});
const arpoRequest = { model: MODEL, messages, frequency_penalty: 1, max_tokens: 4096, temperature: 1, top_p: 0.9, seed: 42 };

interface Answer {
  choices: { message: { content: string }; finish_reason: string }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number; prompt_tokens_details: { image_tokens: number } };
  images: { original: number[]; resized: number[]; tokens: number }[];
  images_dropped: number;
}

let promptTokens = 0;

t.test('served: 200, the three newest screenshots kept, two dropped and reported', async (t) => {
  const res = await http(`${server.url}/v1/chat/completions`, 'POST', arpoRequest);
  t.equal(res.status, 200, res.status === 200 ? 'served' : res.text.slice(0, 300));
  const a = res.json as Answer;
  t.equal(a.images_dropped, 2);
  t.equal(res.headers['x-images-dropped'], '2');
  t.equal(a.images.length, 3);
  for (const im of a.images) t.same(im, { original: [1920, 1080], resized: [1932, 1092], tokens: 2691 });
  t.equal(a.usage.prompt_tokens_details.image_tokens, 3 * 2691);
  t.ok(a.usage.completion_tokens >= 1 && a.usage.completion_tokens <= 4096);
  t.ok(['stop', 'length'].includes(a.choices[0]!.finish_reason));
  promptTokens = a.usage.prompt_tokens;

  // /tokenize counts the same prompt.
  const tok = await http(`${server.url}/tokenize`, 'POST', { model: MODEL, messages });
  t.equal(tok.status, 200);
  const counted = tok.json as { count: number; image_tokens: number; images_dropped: number; max_model_len: number };
  t.equal(counted.count, promptTokens);
  t.equal(counted.image_tokens, 3 * 2691);
  t.equal(counted.images_dropped, 2);
  t.equal(counted.max_model_len, 32768);
});

t.test('max_tokens 4096 is clamped to max_model_len - prompt', async (t) => {
  t.ok(promptTokens > 0, 'the prompt was counted');
  const room = 24;
  const tight = await startTestServer(t, { maxImagesPerRequest: 3, maxModelLen: promptTokens + room });
  const res = await http(`${tight.url}/v1/chat/completions`, 'POST', arpoRequest);
  t.equal(res.status, 200);
  const a = res.json as Answer;
  t.equal(a.usage.prompt_tokens, promptTokens);
  // The seed's first 24 tokens hold no EOS, so the clamp is what ends the sample.
  t.equal(a.choices[0]!.finish_reason, 'length');
  t.equal(a.usage.completion_tokens, room, 'clamped to the room left');
  t.equal(a.usage.total_tokens, promptTokens + room, 'prompt + completion = max_model_len');
});
