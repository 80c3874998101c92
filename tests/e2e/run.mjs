// End-to-end playback tests: jit-origin (the debug build) serves the fixture ladder and a live
// event that ffmpeg pushes to it over RTMP for the run (lib/live.mjs), and Shaka Player, hls.js
// and dash.js play them in headless Chromium (Debian's package, driven by playwright-core).
// Prints one table row per cell; exits non-zero when any cell fails.
//
//   node tests/e2e/run.mjs [--only SUBSTRING] [--jobs N]
//
// Environment: JIT_ORIGIN_BIN (default target/debug/jit-origin, or under CARGO_TARGET_DIR),
// CHROMIUM (default /usr/bin/chromium), FFMPEG (default ffmpeg on PATH; the live push).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

import { runCell, redact } from './lib/cell.mjs';
import { startLiveEvent } from './lib/live.mjs';
import { matrix } from './lib/matrix.mjs';
import { startOrigin } from './lib/origin.mjs';
import { startStatic } from './lib/static.mjs';
import { textCells } from './lib/text.mjs';
import './lib/trick.mjs'; // adds the trick-play cells to the matrix
import './lib/smooth.mjs'; // adds the Smooth Streaming cells to the matrix

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { values: args } = parseArgs({
  options: { only: { type: 'string', multiple: true }, jobs: { type: 'string', default: '2' } },
});

const bin =
  process.env.JIT_ORIGIN_BIN ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(repo, 'target'), 'debug/jit-origin');
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
for (const [what, file] of [['jit-origin', bin], ['chromium', executablePath]]) {
  if (!fs.existsSync(file)) {
    console.error(`${what} not found at ${file}`);
    process.exit(2);
  }
}

const started = Date.now();
const statics = await startStatic();
const origin = await startOrigin({
  bin,
  fixtures: path.join(repo, 'fixtures'),
  playerScriptUrl: `${statics.origin}/lib/shaka-player.js`,
});
const cells = [...matrix, ...textCells].filter((c) => !args.only || args.only.some((o) => c.name.includes(o)));
let browser;
let live;
let results = [];
try {
  // The live cells' event is pushed from the start, so it has a live edge when they run.
  if (cells.some((c) => c.live)) live = await startLiveEvent({ bin, origin });
  // One browser for the run (playwright-core gives it a fresh temporary user-data dir and
  // removes it at close), a new context per cell. Never a browser download: Debian's Chromium.
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const env = { page: statics.origin, origin: origin.base, live };
  results = await runPool(cells, Number(args.jobs), (cell) => runCell(browser, env, cell));
} finally {
  await browser?.close();
  await live?.stop();
  await origin.stop();
  await statics.close();
}

printTable(results);
const failed = results.filter((r) => !r.ok);
for (const r of failed) {
  console.log(`\nFAILED ${r.cell.name}`);
  for (const f of r.failures) console.log(`  - ${f}`);
  const errors = r.facts.errors ?? [];
  if (errors.length) console.log(`  player errors: ${redact(errors.map((e) => `${e.source} ${e.code} ${e.message}`).join(' | '))}`);
}
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(`\n${results.length} cells in ${seconds} s (Chromium start included)`);
console.log(`e2e: ${results.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length || results.length === 0 ? 1 : 0);

/** Runs `work` over `items` with at most `jobs` at once, results in input order. */
async function runPool(items, jobs, work) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i]);
      const r = out[i];
      console.error(`${r.ok ? 'ok  ' : 'FAIL'} ${r.cell.name} (${r.seconds.toFixed(1)} s)`);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, jobs) }, worker));
  return out;
}

function printTable(rows) {
  const f = (n, d = 1) => (typeof n === 'number' ? n.toFixed(d) : '–');
  const pair = (p) => (p ? `${f(p[0])}/${f(p[1])}` : '–');
  const header = ['cell', 'result', 'start s @pos', 'played s/wall', 'seek→landed', 'after seek', 'resolution', 'frames', 'renditions', 'audio', 'notes', 'player errors', 'time s'];
  const lines = rows.map(({ cell, ok, facts, seconds }) => [
    cell.name,
    ok ? 'PASS' : 'FAIL',
    facts.startAt === undefined ? f(facts.startup) : `${f(facts.startup)} @${f(facts.startAt, 2)}`,
    pair(facts.played),
    facts.seek ? `${f(facts.seek[0])}→${f(facts.seek[1])}` : '–',
    pair(facts.afterSeek),
    facts.resolution ?? '–',
    String(facts.frames ?? '–'),
    facts.variants ? facts.variants.map((h) => `${h}p`).join(' ') : '–',
    facts.audio ? facts.audio.join(' ') : '–',
    facts.notes ?? '',
    summariseErrors(facts.errors),
    f(seconds),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const row = (cols) => cols.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  console.log(`\n${row(header)}\n${row(widths.map((w) => '-'.repeat(w)))}`);
  for (const l of lines) console.log(row(l));
}

function summariseErrors(errors = []) {
  if (!errors.length) return 'none';
  const codes = [...new Set(errors.map((e) => `${e.source} ${e.code}${e.fatal ? '' : ' (recovered)'}`))];
  return redact(codes.slice(0, 3).join(', ') + (codes.length > 3 ? ', …' : ''));
}
