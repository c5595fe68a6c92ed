// The OpenAI Batch API flow with the official Node SDK (npm "openai"),
// unchanged, against salvo's gateway (cmd/gateway): only the base URL and
// the key differ from a run against OpenAI. See docs/GATEWAY.md.
//
//   npm install
//   OPENAI_BASE_URL=http://127.0.0.1:8080/v1 OPENAI_API_KEY=<a gateway key> node batch.mjs [input.jsonl]
//
// 1. uploads the input file (purpose "batch") and creates a batch on it;
// 2. polls the batch until it is final, then downloads its output and
//    error files and prints a summary;
// 3. creates a second, larger batch, reads its results so far through
//    salvo's GET /v1/batches/{id}/output, cancels it and waits for it to
//    end;
// 4. lists the tenant's batches two per page.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI, { toFile } from 'openai';

const here = path.dirname(fileURLToPath(import.meta.url));
const input = process.argv[2] ?? path.join(here, 'requests.jsonl');
// The second batch: enough requests that it is still running when the
// cancel arrives (run the upstream with some latency).
const secondBatchSize = Number(process.env.SECOND_BATCH_SIZE ?? 400);
const final = new Set(['completed', 'failed', 'expired', 'cancelled']);

// OpenAI() reads OPENAI_BASE_URL and OPENAI_API_KEY; both are required here
// so that the script never talks to api.openai.com by mistake.
for (const name of ['OPENAI_BASE_URL', 'OPENAI_API_KEY']) {
  if (!process.env[name]) {
    console.error(`set ${name} (see docs/GATEWAY.md)`);
    process.exit(2);
  }
}
// The fetch wrapper prints the list calls, to show the pages the SDK asks
// for; everything else goes through untouched.
const client = new OpenAI({
  baseURL: process.env.OPENAI_BASE_URL,
  apiKey: process.env.OPENAI_API_KEY,
  fetch: (url, init) => {
    const u = new URL(url);
    if (u.pathname.endsWith('/batches') && (init?.method ?? 'GET') === 'GET') console.log(`  (GET ${u.pathname}${u.search})`);
    return fetch(url, init);
  },
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const when = (unix) => (unix ? new Date(unix * 1000).toISOString() : null);

// poll retrieves the batch every interval until it is final, printing each
// change of status (and salvo's estimated_completion_at while it runs).
async function poll(id, intervalMs = 500) {
  let last = '';
  for (;;) {
    const b = await client.batches.retrieve(id);
    const c = b.request_counts;
    const line = `  ${b.status} ${c.completed}/${c.total} completed, ${c.failed} failed`;
    if (line !== last) {
      const eta = b.estimated_completion_at ? ` (estimated completion ${when(b.estimated_completion_at)})` : '';
      console.log(line + eta);
      last = line;
    }
    if (final.has(b.status)) return b;
    await sleep(intervalMs);
  }
}

// content downloads a file's bytes as text (null when there is no file).
async function content(fileID) {
  if (!fileID) return null;
  const res = await client.files.content(fileID);
  return res.text();
}

const lines = (text) => (text ? text.split('\n').filter((l) => l !== '') : []);

// 1. Upload and create.
const file = await client.files.create({ file: fs.createReadStream(input), purpose: 'batch' });
console.log(`uploaded ${file.id}: ${file.filename}, ${file.bytes} bytes, purpose ${file.purpose}, status ${file.status}`);

const batch = await client.batches.create({
  input_file_id: file.id,
  endpoint: '/v1/chat/completions',
  completion_window: '24h',
  metadata: { example: 'openai-node' },
});
console.log(`created ${batch.id}: status ${batch.status}, expires_at ${when(batch.expires_at)}`);

// 2. Poll, download, summarise.
const done = await poll(batch.id);
const output = lines(await content(done.output_file_id));
const errors = lines(await content(done.error_file_id));
const first = output.length > 0 ? JSON.parse(output[0]) : null;
console.log('summary:', JSON.stringify({
  status: done.status,
  request_counts: done.request_counts,
  usage: done.usage,
  output_file_id: done.output_file_id,
  error_file_id: done.error_file_id,
  output_lines: output.length,
  error_lines: errors.length,
  first_output: first && {
    custom_id: first.custom_id,
    status_code: first.response.status_code,
    content: first.response.body.choices?.[0]?.message?.content,
  },
}, null, 2));

// 3. A second batch, cancelled while it runs.
const big = Array.from({ length: secondBatchSize }, (_, i) => JSON.stringify({
  custom_id: `slow-${i + 1}`, method: 'POST', url: '/v1/chat/completions',
  body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `Count to ${i + 1}.` }] },
})).join('\n') + '\n';
const file2 = await client.files.create({ file: await toFile(Buffer.from(big), 'slow.jsonl'), purpose: 'batch' });
const batch2 = await client.batches.create({ input_file_id: file2.id, endpoint: '/v1/chat/completions', completion_window: '1h' });
console.log(`created ${batch2.id} (${secondBatchSize} requests, completion_window 1h)`);
for (;;) {
  const b = await client.batches.retrieve(batch2.id);
  if (b.status === 'in_progress' && b.request_counts.completed > 0) break;
  if (final.has(b.status)) throw new Error(`${batch2.id} ended ${b.status} before the cancel`);
  await sleep(200);
}
// salvo's own endpoint (not in the SDK): the output lines so far, in
// input order, while the batch runs.
const partial = await fetch(`${client.baseURL}/batches/${batch2.id}/output?partial=true`, {
  headers: { Authorization: `Bearer ${client.apiKey}` },
});
console.log(`partial output while running: HTTP ${partial.status}, ${lines(await partial.text()).length} lines so far`);
const cancelling = await client.batches.cancel(batch2.id);
console.log(`cancel ${batch2.id}: status ${cancelling.status}`);
const cancelled = await poll(batch2.id);
const cancelledErrors = lines(await content(cancelled.error_file_id));
console.log(`${batch2.id} ended ${cancelled.status}: request_counts ${JSON.stringify(cancelled.request_counts)}; ` +
  `error file ${cancelled.error_file_id ?? 'none'}, ${cancelledErrors.length} lines` +
  (cancelledErrors.length > 0 ? `, first: ${cancelledErrors[0]}` : ''));

// 4. List with pagination: the SDK follows has_more/last_id (after=).
console.log('batches, two per page:');
let n = 0;
for await (const b of client.batches.list({ limit: 2 })) {
  n++;
  console.log(`  ${n}. ${b.id} ${b.status} ${b.request_counts.completed}/${b.request_counts.total} created ${when(b.created_at)}`);
}
