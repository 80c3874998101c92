// Smooth Streaming subtitles: dash.js (its MSS support) on the Smooth client manifest of the
// subtitles fixture, whose text streams are TTML fragments made from the WebVTT sidecars. The
// player must list the three text streams in English and French; with English selected and
// the video paused at the times the other subtitle cells read, the media element's showing
// text track must show the sidecar's cue (the cue crossing the 2 s fragment boundary once,
// though each fragment holds its part), then the same in French. A Smooth text stream has no
// label: it is chosen by its Name.
import { startPlayer, state, waitFor } from './cell.mjs';
import { matrix } from './matrix.mjs';
import { TEXT_LOCATOR } from './origin.mjs';
import { EXPECTED, mediaTextTracks, seekAndPause, sleep, waitForCue } from './text.mjs';

async function smoothSubtitles({ page, env, requests, checks, facts }) {
  const t0 = Date.now();
  await startPlayer(page, env, 'dashjs-mss', `${env.origin}/${TEXT_LOCATOR}/subtitles.ism/manifest`);
  const first = await waitFor(page, (s) => s.currentTime > 0.05 && !s.paused, 15_000);
  facts.startup = (Date.now() - t0) / 1000;
  if (!checks.check(first && first.errors.every((e) => !e.fatal), 'playback did not start')) {
    facts.errors = (await state(page)).errors;
    return;
  }
  const tracks = await page.evaluate(() => window.e2e.textTracks());
  const listed = tracks.map((t) => `${t.id}:${t.language}`).sort().join();
  facts.audio = [...new Set(tracks.map((t) => t.language))].sort();
  checks.check(listed === 'captions_eng:eng,subtitles_eng:eng,subtitles_fra:fra', `text streams listed: ${JSON.stringify(tracks)}`);
  const seen = [];
  for (const [label, { track, codes, cues }] of Object.entries(EXPECTED)) {
    const selectedAt = Date.now();
    if (!checks.check(await page.evaluate(([c, id]) => window.e2e.selectText(c, id), [codes, track]), `no ${label} text stream (player: ${JSON.stringify(tracks)})`)) continue;
    const loaded = `Fragments(${track}=`;
    for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(100)) {
      if (requests.some((r) => r.at >= selectedAt && r.status === 200 && decodeURIComponent(r.url).includes(loaded))) break;
    }
    for (const [at, text] of cues) {
      await seekAndPause(page, at);
      const got = await waitForCue(page, at, text);
      const fetched = requests.filter((r) => /Fragments\((subtitles|captions)_/.test(r.url)).map((r) => `${r.status} ${decodeURIComponent(new URL(r.url).pathname.split('/').pop())}`);
      checks.check(
        got.ok,
        `${label} at ${at} s: shown cues ${JSON.stringify(got.cues)}, expected [${JSON.stringify(text)}]; ` +
          `the element's text tracks: ${await mediaTextTracks(page)}; text fragments fetched: ${fetched.join(', ') || 'none'}`,
      );
      if (got.ok) seen.push(`${codes[0]}@${at}`);
    }
    const active = (await page.evaluate(() => window.e2e.textTracks())).filter((t) => t.active);
    checks.check(active.length === 1 && active[0].id === track, `active text stream: ${JSON.stringify(active)}`);
  }
  const end = await state(page);
  facts.errors = end.errors;
  facts.frames = end.decodedFrames;
  facts.resolution = `${end.width}x${end.height}`;
  facts.notes = `cues ${seen.join(' ')}`;
  checks.check(end.errors.every((e) => !e.fatal), 'fatal player error');
}

matrix.push({ name: 'dashjs Smooth subtitles eng→fra', run: smoothSubtitles, live: false });
