// The live event of the live cells: started with `jit-origin live-event start`, then pushed by
// ffmpeg over RTMP at real time (testsrc2 + a tone, 3 H.264 renditions with closed 2 s GOPs,
// AAC; one RTMP stream per rendition) until the run ends.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

import { LIVE_EVENT, LIVE_LOCATORS } from './origin.mjs';

const RENDITIONS = [
  { width: 320, height: 180, kbps: 300 },
  { width: 480, height: 270, kbps: 500 },
  { width: 640, height: 360, kbps: 800 },
];
export const LIVE_HEIGHTS = RENDITIONS.map((r) => r.height);
/** Segments the event must have before a player starts (a live edge 3 segments back exists). */
const READY_SEGMENTS = 4;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The ffmpeg arguments of the push: every rendition with the audio, to its own stream name. */
function ffmpegArgs(rtmpPort) {
  const split = `[0:v]split=${RENDITIONS.length}${RENDITIONS.map((_, i) => `[s${i}]`).join('')}`;
  const graph = [split, ...RENDITIONS.map((r, i) => `[s${i}]scale=${r.width}:${r.height}[v${i}]`)].join(';');
  const args = ['-nostdin', '-hide_banner', '-v', 'warning'];
  args.push('-re', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25');
  args.push('-re', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000');
  // Long enough for any run; stopped when the run ends.
  args.push('-t', '1200', '-filter_complex', graph);
  RENDITIONS.forEach((_, i) => args.push('-map', `[v${i}]`));
  args.push('-map', '1:a', '-c:v', 'libx264', '-preset', 'superfast', '-pix_fmt', 'yuv420p');
  args.push('-g', '50', '-keyint_min', '50', '-sc_threshold', '0');
  RENDITIONS.forEach((r, i) => args.push(`-b:v:${i}`, `${r.kbps}k`));
  args.push('-c:a', 'aac', '-b:a', '96k', '-ar', '48000', '-flags', '+global_header', '-f', 'tee');
  const url = (i) => `rtmp://127.0.0.1:${rtmpPort}/live/${LIVE_EVENT.token}/q${i}`;
  args.push(RENDITIONS.map((_, i) => `[f=flv:select=\\'v:${i},a\\']${url(i)}`).join('|'));
  return args;
}

/**
 * Starts the event on `origin` (from lib/origin.mjs) and the push; resolves at once to
 * { ready, stop(), log() }: `ready` resolves once the live HLS playlist of the lowest rendition
 * lists READY_SEGMENTS segments (rejects after 60 s or when ffmpeg exits).
 */
export async function startLiveEvent({ bin, origin, ffmpeg = process.env.FFMPEG ?? 'ffmpeg' }) {
  await promisify(execFile)(bin, ['live-event', 'start', '--config', origin.configPath, LIVE_EVENT.name]);
  const child = spawn(ffmpeg, ffmpegArgs(origin.rtmpPort), { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr.on('data', (d) => (output = (output + d).slice(-4000)));
  let exited = null;
  child.once('exit', (code, signal) => (exited = code ?? signal));
  const multivariant = `${origin.base}/${LIVE_LOCATORS.clear}/${LIVE_EVENT.name}.ism/manifest(format=m3u8-cmaf)`;
  const ready = (async () => {
    const deadline = Date.now() + 60_000;
    let seen = '';
    for (;;) {
      if (exited !== null) throw new Error(`the live push ended (${exited}): ${output}`);
      if (Date.now() > deadline) throw new Error(`the live event did not list ${READY_SEGMENTS} segments in 60 s: ${seen}`);
      seen = await segmentsListed(multivariant).catch((e) => e.message);
      if (typeof seen === 'number' && seen >= READY_SEGMENTS) return;
      await sleep(500);
    }
  })();
  // A cell waiting on it reports the failure; nobody waiting is no unhandled rejection.
  ready.catch(() => {});
  return {
    ready,
    stop: async () => {
      if (exited === null) {
        child.kill('SIGTERM');
        await new Promise((resolve) => child.once('exit', resolve));
      }
    },
    log: () => output,
  };
}

/** How many segments the first video media playlist of `multivariant` lists. */
async function segmentsListed(multivariant) {
  const text = async (url) => {
    const r = await fetch(url);
    if (r.status !== 200) throw new Error(`${url}: ${r.status}`);
    return r.text();
  };
  const lines = (await text(multivariant)).split('\n');
  const at = lines.findIndex((l) => l.startsWith('#EXT-X-STREAM-INF'));
  if (at < 0) throw new Error('no variant yet');
  const media = new URL(lines[at + 1].trim(), multivariant).href;
  return (await text(media)).split('\n').filter((l) => l.startsWith('#EXTINF')).length;
}
