// One matrix cell: a fresh browser context, the harness page with one player library, a URL
// played through a scenario, and the checks on what the player and the network reported.

/** Each player: its scripts in load order and the harness adapter that drives it. The Smooth
 * Streaming players are apart: dash.js loads its MSS module next to dash.all, and Shaka Player
 * plays Smooth from its 4.16 line (5.0 removed it) with codem-isoboxer, which its Smooth
 * transmuxer needs. */
const PLAYERS = {
  shaka: { adapter: 'shaka', scripts: ['/lib/shaka-player.js'] },
  hlsjs: { adapter: 'hlsjs', scripts: ['/lib/hls.js'] },
  dashjs: { adapter: 'dashjs', scripts: ['/lib/dash.js'] },
  'shaka-mss': { adapter: 'shaka', scripts: ['/lib/iso_boxer.js', '/lib/shaka-player-mss.js'] },
  'dashjs-mss': { adapter: 'dashjs', scripts: ['/lib/dash.js', '/lib/dash.mss.js'] },
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A cell that hangs (a player that never answers) fails instead of stalling the run. */
const CELL_TIMEOUT_MS = 60_000;

/** Tokens never show up in reports. */
export const redact = (text) => String(text).replace(/token=[^&\s"';)]+/g, 'token=…');

/** Collects failed checks; `check(ok, message)` returns ok. */
class Checks {
  constructor() {
    this.failures = [];
  }
  check(ok, message) {
    if (!ok) this.failures.push(message);
    return ok;
  }
}

const fatalErrors = (state) => state.errors.filter((e) => e.fatal);
const describeErrors = (errors) => errors.map((e) => `${e.source} ${e.code}${e.message ? ` (${e.message})` : ''}`).join('; ');

/**
 * Runs `cell` in a new context of `browser`; `env` has the static server's origin (`page`).
 * Resolves to { cell, ok, failures, facts, seconds }.
 */
export async function runCell(browser, env, cell) {
  const started = Date.now();
  const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
  const page = await context.newPage();
  const requests = [];
  const pageProblems = [];
  page.on('response', (r) => requests.push({ url: r.url(), status: r.status(), at: Date.now() }));
  page.on('requestfailed', (r) => requests.push({ url: r.url(), status: 0, failure: r.failure()?.errorText, at: Date.now() }));
  page.on('pageerror', (e) => pageProblems.push(`page error: ${e.message}`));
  const checks = new Checks();
  const facts = {};
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`cell timed out after ${CELL_TIMEOUT_MS / 1000} s`)), CELL_TIMEOUT_MS);
  });
  try {
    await Promise.race([cell.run({ page, env, requests, checks, facts, cell }), timeout]);
  } catch (e) {
    checks.check(false, `harness: ${e.message}`);
  } finally {
    clearTimeout(timer);
    await context.close();
  }
  for (const p of pageProblems) checks.check(false, p);
  return {
    cell,
    ok: checks.failures.length === 0,
    failures: checks.failures.map(redact),
    facts,
    seconds: (Date.now() - started) / 1000,
  };
}

/** Loads the harness page with `player` and starts playing `url`. */
export async function startPlayer(page, env, player, url, options = {}) {
  // Option values may depend on the origin's address: functions of `env`.
  const resolved = Object.fromEntries(Object.entries(options).map(([k, v]) => [k, typeof v === 'function' ? v(env) : v]));
  await page.goto(`${env.page}/page/index.html`);
  const { adapter, scripts } = PLAYERS[player];
  for (const script of scripts) await page.addScriptTag({ url: script });
  await page.addScriptTag({ url: '/page/harness.js' });
  await page.evaluate(([a, o]) => window.e2e.start(a, o), [adapter, { url, ...resolved }]);
}

export const state = (page) => page.evaluate(() => window.e2e.state());

/** Polls the page state until `predicate` holds or a fatal error appears; null on timeout. */
export async function waitFor(page, predicate, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await state(page);
    if (predicate(s) || fatalErrors(s).length > 0) return s;
    if (Date.now() > deadline) return null;
    await sleep(100);
  }
}

/**
 * Plays for `ms` of wall time and checks the media time advanced at least half as much and
 * that new frames were decoded; returns the state at the end.
 */
async function playFor(page, checks, label, ms) {
  const before = await state(page);
  await sleep(ms);
  const after = await state(page);
  const wall = (after.now - before.now) / 1000;
  const advanced = after.currentTime - before.currentTime;
  checks.check(
    advanced >= wall / 2,
    `${label}: media time advanced ${advanced.toFixed(2)} s in ${wall.toFixed(2)} s of wall time (from ${before.currentTime.toFixed(2)} s)`,
  );
  checks.check(after.decodedFrames > before.decodedFrames, `${label}: no video frame decoded (${after.decodedFrames} in all)`);
  return { before, after, advanced, wall };
}

const resolutions = (variants) => [...new Set(variants.map((v) => v.height).filter(Boolean))].sort((a, b) => a - b);
// Shaka and dash.js report the playlists' ISO 639-2 codes as the ISO 639-1 ones.
const ISO_639_1 = { eng: 'en', fra: 'fr' };
const language = (code) => ISO_639_1[code] ?? code;
const languages = (tracks) => [...new Set(tracks.map((t) => language(t.language)))].sort();
const activeLanguage = (tracks) => language(tracks.find((t) => t.active)?.language);

/**
 * The playback scenario: start, play `playMs`, optionally switch the audio language or the
 * video rendition and play on, seek to the middle and play `afterSeekMs`. Checks progress,
 * frames, the seek position, the ladder's renditions and languages, and that no fatal error
 * was reported. `switchVideo(bitrate)`: a substring of the URLs of the chosen rendition's
 * video fragments (its requests prove the switch).
 */
export function playback({ player, url, options, keyFrom = null, playMs = 3000, afterSeekMs = 2000, switchAudioTo = null, switchVideo = null }) {
  return async ({ page, env, requests, checks, facts }) => {
    const t0 = Date.now();
    await startPlayer(page, env, player, url(env), options);
    // The 'playing' event is a queued task: on a loaded machine media time can advance before
    // it is dispatched, so wait for it too rather than read startedAt too early.
    const first = await waitFor(page, (s) => s.currentTime > 0.05 && !s.paused && s.startedAt !== null, 15_000);
    facts.startup = (Date.now() - t0) / 1000;
    if (!checks.check(first && fatalErrors(first).length === 0, 'playback did not start')) {
      const s = await state(page);
      facts.errors = s.errors;
      checks.check(false, `errors: ${describeErrors(s.errors) || 'none reported'}; requests failed: ${failedRequests(requests)}`);
      return;
    }
    // Players skip ahead when the first segment lands outside the period (e.g. edit list and
    // presentationTimeOffset both applied): playback must begin at the start.
    facts.startAt = first.startedAt;
    checks.check(first.startedAt !== null && first.startedAt < 0.5, `playback began at ${first.startedAt} s, not at the start`);
    const phase1 = await playFor(page, checks, 'first play', playMs);
    facts.played = [phase1.advanced, phase1.wall];

    if (switchAudioTo) {
      const tracks = phase1.after.audioTracks;
      const from = activeLanguage(tracks);
      const to = language(switchAudioTo);
      checks.check(from && from !== to, `active audio before the switch: ${from}`);
      const switchedAt = Date.now();
      const codes = [switchAudioTo, to];
      checks.check(await page.evaluate((c) => window.e2e.selectAudio(c), codes), `no ${switchAudioTo} audio track`);
      const switched = await waitFor(page, (s) => activeLanguage(s.audioTracks) === to, 5_000);
      checks.check(switched && activeLanguage(switched.audioTracks) === to, `audio did not switch to ${switchAudioTo}`);
      const phase = await playFor(page, checks, `after switching audio to ${switchAudioTo}`, 2000);
      // The switch is real only if the new language's segments were fetched.
      const fetched = requests.filter((r) => r.at >= switchedAt && r.status === 200 && r.url.includes(`audio_${switchAudioTo}`));
      checks.check(fetched.length > 0, `no audio_${switchAudioTo} request after the switch`);
      facts.notes = `audio ${from}→${activeLanguage(phase.after.audioTracks)}, ${fetched.length} ${switchAudioTo} requests`;
    }

    if (switchVideo) facts.notes = await switchRendition(page, checks, requests, switchVideo);

    const middle = phase1.after.duration / 2;
    const seekAt = Date.now();
    await page.evaluate((t) => window.e2e.seek(t), middle);
    const landed = await waitFor(page, (s) => !s.seeking && s.currentTime >= middle - 0.5 && !s.paused, 10_000);
    facts.seek = [middle, landed ? landed.currentTime : null, (Date.now() - seekAt) / 1000];
    if (checks.check(landed, `seek to ${middle.toFixed(2)} s did not complete`)) {
      checks.check(Math.abs(landed.currentTime - middle) < 1, `seek to ${middle.toFixed(2)} s landed at ${landed.currentTime.toFixed(2)} s`);
      const phase2 = await playFor(page, checks, 'after the seek', afterSeekMs);
      facts.afterSeek = [phase2.advanced, phase2.wall];
    }

    const end = await state(page);
    facts.resolution = `${end.width}x${end.height}`;
    facts.frames = end.decodedFrames;
    facts.dropped = end.droppedFrames;
    facts.variants = resolutions(end.variants);
    facts.audio = languages(end.audioTracks);
    facts.errors = end.errors;
    checks.check(end.width > 0 && end.height > 0, 'no video resolution');
    checks.check(facts.variants.join() === '144,240,360', `video renditions seen: ${facts.variants.join(', ') || 'none'}`);
    checks.check(facts.audio.join() === 'en,fr', `audio languages seen: ${facts.audio.join(', ') || 'none'}`);
    checks.check(fatalErrors(end).length === 0, `fatal errors: ${describeErrors(fatalErrors(end))}`);
    // Protected cells: the key really came from the origin (licence or key endpoint).
    if (keyFrom) {
      const served = requests.filter((r) => r.status === 200 && keyFrom.test(new URL(r.url).pathname));
      facts.notes = `${served.length} key/licence requests`;
      checks.check(served.length > 0, `no successful request to ${keyFrom} (failed: ${failedRequests(requests)})`);
    }
  };
}

/**
 * Turns adaptation off and selects another video rendition than the one showing (the lowest,
 * or the highest when the lowest shows); checks the picture takes its height, its fragments
 * (`fragmentOf(bitrate)` in their URLs) are fetched and playback goes on. Returns a note.
 */
async function switchRendition(page, checks, requests, fragmentOf) {
  const before = await state(page);
  const heights = resolutions(before.variants);
  const to = before.height === heights[0] ? heights[heights.length - 1] : heights[0];
  const switchedAt = Date.now();
  const bitrate = await page.evaluate((h) => window.e2e.selectVideo(h), to);
  if (!checks.check(bitrate, `no ${to}p rendition to switch to (renditions: ${heights.join(', ')})`)) return '';
  const switched = await waitFor(page, (s) => s.height === to, 8_000);
  checks.check(switched && switched.height === to, `the picture did not switch from ${before.height}p to ${to}p`);
  const phase = await playFor(page, checks, `after switching video to ${to}p`, 1500);
  const fetched = requests.filter((r) => r.at >= switchedAt && r.status === 200 && decodeURIComponent(r.url).includes(fragmentOf(bitrate)));
  checks.check(fetched.length > 0, `no ${fragmentOf(bitrate)} request after the switch`);
  return `video ${before.height}p→${phase.after.height}p (${bitrate} b/s), ${fetched.length} requests`;
}

/** How far behind its live edge a player may play (players keep ~3 segments of 2 s back). */
const MAX_EDGE_DISTANCE_S = 15;

/**
 * The live scenario: once the live event has segments (`env.live.ready`), start at the live
 * edge and play until media time has advanced `playSeconds` (within twice that in wall time).
 * Checks the player says live, starts and stays near its live edge, the edge moves on as the
 * playlists grow, frames are decoded, every rendition of `heights` is offered, no fatal error,
 * and for protected cells that the key came from the origin.
 */
export function livePlayback({ player, url, options, keyFrom = null, heights, playSeconds = 10 }) {
  return async ({ page, env, requests, checks, facts }) => {
    if (!checks.check(env.live, 'no live event in this run')) return;
    await env.live.ready;
    const t0 = Date.now();
    await startPlayer(page, env, player, url(env), options);
    const first = await waitFor(page, (s) => s.currentTime > 0.05 && !s.paused && s.startedAt !== null, 20_000);
    facts.startup = (Date.now() - t0) / 1000;
    if (!checks.check(first && fatalErrors(first).length === 0, 'playback did not start')) {
      const s = await state(page);
      facts.errors = s.errors;
      checks.check(false, `errors: ${describeErrors(s.errors) || 'none reported'}; requests failed: ${failedRequests(requests)}`);
      return;
    }
    facts.startAt = first.startedAt;
    const behind = (s) => s.live.edge - s.currentTime;
    checks.check(first.live.isLive === true, `the player does not say live: ${JSON.stringify(first.live)}`);
    checks.check(behind(first) <= MAX_EDGE_DISTANCE_S, `started ${behind(first).toFixed(1)} s behind the live edge ${first.live.edge}`);
    const end = await waitFor(page, (s) => s.currentTime - first.currentTime >= playSeconds, playSeconds * 2000);
    const last = end ?? (await state(page));
    const advanced = last.currentTime - first.currentTime;
    const wall = (last.now - first.now) / 1000;
    facts.played = [advanced, wall];
    checks.check(advanced >= playSeconds, `media time advanced ${advanced.toFixed(2)} s in ${wall.toFixed(2)} s of wall time`);
    checks.check(last.decodedFrames > first.decodedFrames, `no video frame decoded while playing (${last.decodedFrames} in all)`);
    checks.check(last.live.isLive === true, `the player no longer says live: ${JSON.stringify(last.live)}`);
    checks.check(behind(last) <= MAX_EDGE_DISTANCE_S, `${behind(last).toFixed(1)} s behind the live edge after playing`);
    // The edge moved with the event: the player refreshed growing playlists.
    const moved = last.live.edge - first.live.edge;
    checks.check(moved >= wall / 2, `the live edge moved ${moved.toFixed(1)} s in ${wall.toFixed(1)} s`);
    facts.resolution = `${last.width}x${last.height}`;
    facts.frames = last.decodedFrames;
    facts.variants = resolutions(last.variants);
    facts.errors = last.errors;
    facts.notes = `live, ${behind(last).toFixed(1)} s behind the edge, edge +${moved.toFixed(1)} s`;
    checks.check(last.width > 0 && last.height > 0, 'no video resolution');
    checks.check(facts.variants.join() === heights.join(), `video renditions seen: ${facts.variants.join(', ') || 'none'}`);
    checks.check(fatalErrors(last).length === 0, `fatal errors: ${describeErrors(fatalErrors(last))}`);
    if (keyFrom) {
      const served = requests.filter((r) => r.status === 200 && keyFrom.test(new URL(r.url).pathname));
      facts.notes += `, ${served.length} key/licence requests`;
      checks.check(served.length > 0, `no successful request to ${keyFrom} (failed: ${failedRequests(requests)})`);
    }
  };
}

function failedRequests(requests) {
  const failed = requests.filter((r) => r.status === 0 || r.status >= 400);
  return failed.map((r) => `${r.status || r.failure} ${new URL(r.url).pathname}`).join(', ') || 'none';
}

/**
 * A negative scenario: playing must fail. `expect(state, requests)` returns the list of what
 * is missing (empty when the failure is the expected one).
 */
export function failure({ player, url, options, describe, expect, timeoutMs = 15_000 }) {
  return async ({ page, env, requests, checks, facts }) => {
    await startPlayer(page, env, player, url(env), options);
    const s = (await waitFor(page, (st) => fatalErrors(st).length > 0, timeoutMs)) ?? (await state(page));
    facts.errors = s.errors;
    facts.frames = s.decodedFrames;
    facts.resolution = `${s.width}x${s.height}`;
    facts.notes = `expected: ${describe}`;
    checks.check(fatalErrors(s).length > 0, `no fatal error reported within ${timeoutMs / 1000} s (errors: ${describeErrors(s.errors) || 'none'})`);
    for (const missing of expect(s, requests)) checks.check(false, missing);
  };
}

/**
 * Luma statistics of a PNG, decoded by the browser: { width, height, mean, stddev, colours }
 * (colours counted at 5 bits per channel).
 */
async function pixelStats(context, png) {
  const page = await context.newPage();
  try {
    return await page.evaluate(async (b64) => {
      const img = new Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const canvas = document.createElement('canvas');
      canvas.width = img.width;
      canvas.height = img.height;
      const ctx = canvas.getContext('2d');
      ctx.drawImage(img, 0, 0);
      const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
      let sum = 0;
      let squares = 0;
      const colours = new Set();
      for (let i = 0; i < data.length; i += 4) {
        const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
        const y = 0.299 * r + 0.587 * g + 0.114 * b;
        sum += y;
        squares += y * y;
        colours.add(((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3));
      }
      const n = data.length / 4;
      const mean = sum / n;
      return { width: img.width, height: img.height, mean, stddev: Math.sqrt(Math.max(0, squares / n - mean * mean)), colours: colours.size };
    }, png.toString('base64'));
  } finally {
    await page.close();
  }
}

/** A picture, not a blank area: luma varies and many colours appear. */
const looksLikePicture = (s) => s.stddev > 20 && s.colours > 100;

/**
 * The origin's operator page, `/player?url=…`: it plays `url` with Shaka Player, lists the
 * ladder's variants and both languages, shows no error, and the video area shows a picture
 * (pixels of a screenshot). Also: hostile `url` values are shown as text, never run.
 */
export function operatorPage({ url }) {
  return async ({ page, env, checks, facts }) => {
    const cspViolations = [];
    page.on('console', (m) => /Content Security Policy/i.test(m.text()) && cspViolations.push(m.text()));
    const manifest = url(env);
    const t0 = Date.now();
    const response = await page.goto(`${env.origin}/player?url=${encodeURIComponent(manifest)}`);
    checks.check(response.status() === 200, `/player answered ${response.status()}`);
    checks.check(/script-src/.test(response.headers()['content-security-policy'] ?? ''), 'no Content-Security-Policy');
    const playing = await page
      .waitForFunction(() => {
        const v = document.getElementById('video');
        return v.currentTime > 1.5 && !v.paused && document.querySelectorAll('#variants tr').length > 0;
      }, null, { timeout: 15_000, polling: 100 })
      .then(() => true, () => false);
    facts.startup = (Date.now() - t0) / 1000;
    const dom = await page.evaluate(() => {
      const v = document.getElementById('video');
      return {
        currentTime: v.currentTime,
        width: v.videoWidth,
        height: v.videoHeight,
        frames: v.getVideoPlaybackQuality().totalVideoFrames,
        resolutions: [...document.querySelectorAll('#variants tr')].map((tr) => tr.children[1].textContent),
        audio: [...document.querySelectorAll('#audio li')].map((li) => li.dataset.language),
        errors: [...document.querySelectorAll('#errors li')].map((li) => li.textContent),
      };
    });
    facts.resolution = `${dom.width}x${dom.height}`;
    facts.frames = dom.frames;
    facts.variants = [...new Set(dom.resolutions.map((r) => Number(r.split('x')[1])).filter(Boolean))].sort((a, b) => a - b);
    facts.audio = languages(dom.audio.map((language) => ({ language })));
    facts.errors = dom.errors.map((message) => ({ source: 'page', fatal: true, code: 'shown', message }));
    checks.check(playing, `the page did not play (at ${dom.currentTime.toFixed(2)} s; errors: ${dom.errors.join('; ') || 'none'})`);
    checks.check(facts.variants.join() === '144,240,360', `variants listed: ${dom.resolutions.join(', ') || 'none'}`);
    checks.check(facts.audio.join() === 'en,fr', `audio tracks listed: ${dom.audio.join(', ') || 'none'}`);
    checks.check(dom.errors.length === 0, `errors listed: ${dom.errors.join('; ')}`);

    // The video area in a screenshot (controls hidden, they would add pixels of their own),
    // against a blank area of the same size as the control that the check can fail.
    await page.evaluate(() => (document.getElementById('video').controls = false));
    const clip = await page.locator('#video').boundingBox();
    const shot = await pixelStats(page.context(), await page.screenshot({ clip }));
    await page.evaluate(() => (document.getElementById('video').style.visibility = 'hidden'));
    const blank = await pixelStats(page.context(), await page.screenshot({ clip }));
    facts.notes = `screenshot σ ${shot.stddev.toFixed(0)}, ${shot.colours} colours (blank: σ ${blank.stddev.toFixed(0)}, ${blank.colours})`;
    checks.check(looksLikePicture(shot), `the video area looks blank: ${facts.notes}`);
    checks.check(!looksLikePicture(blank), `the blank control passes the picture check: ${facts.notes}`);
    checks.check(cspViolations.length === 0, `CSP violations: ${cspViolations.join('; ')}`);

    // A hostile url is shown as text and runs nothing; a non-http(s) one is refused.
    const hostile = '/x"><script>window.injected=1</script><img/src=x/onerror=window.injected=2>';
    const probe = await page.goto(`${env.origin}/player?url=${encodeURIComponent(hostile)}`);
    checks.check(probe.status() === 200, `/player with a hostile path answered ${probe.status()}`);
    const shown = await page.evaluate(() => ({ injected: window.injected, text: document.querySelector('.url code').textContent }));
    checks.check(shown.injected === undefined && shown.text === hostile, `hostile url: injected=${shown.injected}, shown as ${shown.text}`);
    const refused = await page.request.get(`${env.origin}/player?url=${encodeURIComponent('javascript:alert(1)')}`);
    checks.check(refused.status() === 400, `/player?url=javascript:… answered ${refused.status()}`);
  };
}
