// Drives kura serve with the official `openai` npm client, unchanged: only baseURL and apiKey
// are set. Environment: KURA_BASE_URL (http://127.0.0.1:PORT/v1), KURA_API_KEY, KURA_MODEL,
// KURA_EXPECT_COMPLETION (greedy text for "Once upon a time", 16 tokens).
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.KURA_BASE_URL, apiKey: process.env.KURA_API_KEY });
const model = process.env.KURA_MODEL;
let failed = 0;
function check(name, cond, detail) {
  console.log(`${cond ? "ok" : "FAIL"}: ${name}${cond ? "" : " " + JSON.stringify(detail)}`);
  if (!cond) failed++;
}

const models = await client.models.list();
const ids = [];
for await (const m of models) ids.push(m.id);
check("models.list names the model", ids.includes(model), ids);

const messages = [
  { role: "system", content: "You are a storyteller." },
  { role: "user", content: "Tell me a story about a cat." },
];
const chat = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0 });
const text = chat.choices[0].message.content;
check("chat: assistant content", chat.choices[0].message.role === "assistant" && text.length > 0, chat);
check("chat: usage", chat.usage.completion_tokens === 12 &&
  chat.usage.total_tokens === chat.usage.prompt_tokens + 12, chat.usage);

const stream = await client.chat.completions.create({
  model, messages, max_tokens: 12, temperature: 0, stream: true,
  stream_options: { include_usage: true },
});
let streamed = "", usage = null, finish = null;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    streamed += c.delta?.content ?? "";
    if (c.finish_reason) finish = c.finish_reason;
  }
}
check("chat stream: same text as non-streamed", streamed === text, { streamed, text });
check("chat stream: finish_reason and usage", finish === "length" && usage?.completion_tokens === 12,
  { finish, usage });

const lp = await client.chat.completions.create({
  model, messages, max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 2,
});
check("chat logprobs", lp.choices[0].logprobs.content.length === 4 &&
  lp.choices[0].logprobs.content.every((e) => e.top_logprobs.length === 2), lp.choices[0].logprobs);

const comp = await client.completions.create({
  model, prompt: "Once upon a time", max_tokens: 16, temperature: 0,
});
check("completion: greedy text", comp.choices[0].text === process.env.KURA_EXPECT_COMPLETION,
  comp.choices[0].text);
const cstream = await client.completions.create({
  model, prompt: "Once upon a time", max_tokens: 16, temperature: 0, stream: true,
});
let ctext = "";
for await (const chunk of cstream) ctext += chunk.choices[0]?.text ?? "";
check("completion stream: same text", ctext === comp.choices[0].text, ctext);

const emb = await client.embeddings.create({ model, input: ["hello world", "a cat"] });
const v = emb.data[0].embedding;
const norm = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
check("embeddings: two vectors, unit length", emb.data.length === 2 && v.length > 0 &&
  Math.abs(norm - 1) < 1e-3, { n: emb.data.length, len: v.length, norm });
const embf = await client.embeddings.create({ model, input: "hello world", encoding_format: "float" });
check("embeddings: float form equals the default (base64) form",
  embf.data[0].embedding.every((x, i) => Math.abs(x - v[i]) < 1e-6));

try {
  await client.chat.completions.create({ model: "no-such-model", messages, max_tokens: 2 });
  check("unknown model raises NotFoundError", false);
} catch (e) {
  check("unknown model raises NotFoundError", e instanceof OpenAI.NotFoundError, String(e));
}
try {
  const bad = new OpenAI({ baseURL: process.env.KURA_BASE_URL, apiKey: "kura_wrong", maxRetries: 0 });
  await bad.models.list();
  check("wrong key raises AuthenticationError", false);
} catch (e) {
  check("wrong key raises AuthenticationError", e instanceof OpenAI.AuthenticationError, String(e));
}
try {
  await client.chat.completions.create({ model, messages: "not a list", max_tokens: 2 });
  check("bad request raises BadRequestError", false);
} catch (e) {
  check("bad request raises BadRequestError", e instanceof OpenAI.BadRequestError &&
    e.error?.param === "messages", String(e));
}
process.exit(failed ? 1 : 0);
