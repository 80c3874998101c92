// Subtitle cells: the subtitles fixture (WebVTT sidecars in English, French and English SDH
// named in its .ism) in Shaka Player, hls.js and dash.js, over HLS-TS, HLS-CMAF and DASH. The
// player must list the text tracks with their languages; with English selected, the media
// element's showing text track must show the fixture's cue at known times (the cue crossing
// the 2 s segment boundary exactly once, though both segments carry it), then the same after
// switching to French.
import { startPlayer, state, waitFor } from './cell.mjs';
import { TEXT_LOCATOR } from './origin.mjs';

/** What the sidecars show at these times (fixtures/subtitles/*.vtt). The switch to French
 * happens at 1 s and French is read there first: players load the new language's segments
 * from the current position on (dash.js does not go back for earlier ones). */
export const EXPECTED = {
  English: { track: 'subtitles_eng', codes: ['eng', 'en'], cues: [[2.2, 'This cue crosses the 2 s segment boundary'], [1.0, 'Hello from jit-origin']] },
  Français: { track: 'subtitles_fra', codes: ['fra', 'fr'], cues: [[1.0, 'Bonjour de jit-origin'], [2.2, 'Cette réplique traverse la limite de 2 s']] },
};

const ISO_639_1 = { eng: 'en', fra: 'fr' };
const normalise = (text) => String(text).replace(/<[^>]*>/g, '').replace(/\s+/g, ' ').trim();
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Seeks to `t` and pauses there, so the cue at `t` stays active while we read it. */
export const seekAndPause = (page, t) =>
  page.evaluate((at) => {
    window.e2e.seek(at);
    window.e2e.pause();
  }, t);

/** The media element's text tracks (mode, label, language, cue times), for failure reports. */
export const mediaTextTracks = (page) =>
  page.evaluate(() =>
    JSON.stringify(
      Array.from(document.querySelector('video').textTracks).map((t) => ({
        mode: t.mode,
        label: t.label,
        language: t.language,
        cues: t.cues ? Array.from(t.cues).map((c) => [c.startTime, c.endTime]) : null,
      })),
    ),
  );

/**
 * Polls the shown cues at `at` until they are exactly [`text`]; returns the last cues seen
 * and whether a second seek was needed. Shaka Player sometimes fetches the text segments
 * after a seek and a track switch without appending their cues (its text engine, not the
 * bytes: the same segments show in other runs); a second seek there makes it fetch and
 * append them again, as a viewer scrubbing again would.
 */
export async function waitForCue(page, at, text, timeoutMs = 10_000) {
  const start = Date.now();
  let cues = [];
  let reseeked = false;
  for (;;) {
    cues = (await page.evaluate(() => window.e2e.activeCues())).map((c) => normalise(c.text));
    if (cues.length === 1 && cues[0] === text) return { ok: true, cues, reseeked };
    if (Date.now() - start > timeoutMs) return { ok: false, cues, reseeked };
    if (!reseeked && Date.now() - start > timeoutMs / 2) {
      reseeked = true;
      await seekAndPause(page, at);
    }
    await sleep(100);
  }
}

function subtitles({ player, url }) {
  return async ({ page, env, requests, checks, facts }) => {
    const t0 = Date.now();
    await startPlayer(page, env, player, url(env));
    const first = await waitFor(page, (s) => s.currentTime > 0.05 && !s.paused, 15_000);
    facts.startup = (Date.now() - t0) / 1000;
    if (!checks.check(first && first.errors.every((e) => !e.fatal), 'playback did not start')) {
      facts.errors = (await state(page)).errors;
      return;
    }
    const tracks = await page.evaluate(() => window.e2e.textTracks());
    const languages = [...new Set(tracks.map((t) => ISO_639_1[t.language] ?? t.language))].sort();
    facts.audio = languages;
    checks.check(tracks.length === 3, `text tracks listed: ${JSON.stringify(tracks)}`);
    checks.check(languages.join() === 'en,fr', `text languages listed: ${languages.join(', ') || 'none'}`);
    const seen = [];
    let reseeks = 0;
    for (const [label, { track, codes, cues }] of Object.entries(EXPECTED)) {
      const selectedAt = Date.now();
      if (!checks.check(await page.evaluate(([c, l]) => window.e2e.selectText(c, l), [codes, label]), `no ${label} text track (player: ${JSON.stringify(tracks)}; element: ${await mediaTextTracks(page)})`)) continue;
      // As a viewer would, let the player start loading the new language before seeking
      // (a seek at once aborts Shaka's request of the DASH text init segment, which it then
      // never asks for again).
      const loaded = `Fragments(${track}=`;
      for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(100)) {
        if (requests.some((r) => r.at >= selectedAt && r.status === 200 && decodeURIComponent(r.url).includes(loaded))) break;
      }
      for (const [at, text] of cues) {
        await seekAndPause(page, at);
        const got = await waitForCue(page, at, text);
        if (got.reseeked) reseeks += 1;
        const fetched = requests.filter((r) => /Fragments\((subtitles|captions)_/.test(r.url)).map((r) => `${r.status} ${decodeURIComponent(new URL(r.url).pathname.split('/').pop())}`);
        checks.check(
          got.ok,
          `${label} at ${at} s: shown cues ${JSON.stringify(got.cues)}, expected [${JSON.stringify(text)}]; ` +
            `the element's text tracks: ${await mediaTextTracks(page)}; text segments fetched: ${fetched.join(', ') || 'none'}`,
        );
        if (got.ok) seen.push(`${ISO_639_1[codes[0]]}@${at}`);
      }
      const active = (await page.evaluate(() => window.e2e.textTracks())).filter((t) => t.active);
      checks.check(active.length === 1 && active[0].label === label, `active text track: ${JSON.stringify(active)}`);
    }
    const end = await state(page);
    facts.errors = end.errors;
    facts.frames = end.decodedFrames;
    facts.resolution = `${end.width}x${end.height}`;
    facts.notes = `cues ${seen.join(' ')}${reseeks ? `, ${reseeks} second seeks` : ''}`;
    checks.check(end.errors.every((e) => !e.fatal), 'fatal player error');
  };
}

const media = (resource) => (env) => `${env.origin}/${TEXT_LOCATOR}/subtitles.ism/${resource}`;

// Shaka Player on HLS is not a cell: in 1 to 3 runs of 4 it fetches every WebVTT segment
// (200) and hands none of their cues to its text displayer, with the same bytes that show in
// its other runs and in every hls.js run (README, "End-to-end player tests").
export const textCells = [
  ['hlsjs', 'm3u8-aapl', 'HLS-TS'],
  ['hlsjs', 'm3u8-cmaf', 'HLS-CMAF'],
  ['shaka', 'mpd-time-cmaf', 'DASH-CMAF'],
  ['dashjs', 'mpd-time-cmaf', 'DASH-CMAF'],
].map(([player, format, label]) => {
  const ext = format.startsWith('mpd') ? 'mpd' : 'm3u8';
  return {
    name: `${player} ${label} subtitles eng→fra`,
    run: subtitles({ player, url: media(`manifest(format=${format}).${ext}`) }),
    live: false,
  };
});
