// Trick play in Shaka Player: the DASH trick-mode AdaptationSet and the HLS I-frame playlist of
// the fixture ladder. Importing this module adds its cells to the matrix (run.mjs imports it).
//
// Scenario: play the clear ladder with a short buffering goal (so the 8 s asset is not all
// buffered before trick play starts), call `player.trickPlay(4)` at ~1 s and watch the network:
// Shaka must switch the video to the trick-mode stream, i.e. request `KeyFrames(…)` resources
// (all answered 200), play faster than real time, and report no error. Then
// `cancelTrickPlay()` must bring back the normal stream (`Fragments(video=…)` requests).
import { matrix } from './matrix.mjs';
import { LOCATORS } from './origin.mjs';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `read()` until `predicate` holds; the last value either way. */
async function poll(read, predicate, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (predicate(value) || Date.now() > deadline) return value;
    await sleep(100);
  }
}

const isKeyFrame = (r) => r.url.includes('/KeyFrames(');
const isVideoFragment = (r) => /\/QualityLevels\(\d+\)\/Fragments\(video=\d+/.test(r.url);

function trickPlay({ manifest }) {
  return async ({ page, env, requests, checks, facts }) => {
    const url = `${env.origin}/${LOCATORS.clear}/ladder.ism/${manifest}`;
    const t0 = Date.now();
    await page.goto(`${env.page}/page/index.html`);
    await page.addScriptTag({ url: '/lib/shaka-player.js' });
    const loadError = await page.evaluate(async (u) => {
      shaka.polyfill.installAll();
      const video = document.getElementById('video');
      const player = new shaka.Player();
      await player.attach(video);
      const errors = [];
      window.trick = { player, video, errors };
      player.addEventListener('error', (e) => errors.push(`${e.detail.category}/${e.detail.code}`));
      player.configure({ streaming: { bufferingGoal: 1, rebufferingGoal: 0.5, bufferBehind: 1 } });
      try {
        await player.load(u);
      } catch (e) {
        return `load failed: ${e.category}/${e.code}`;
      }
      video.muted = true;
      await video.play().catch(() => {});
      return null;
    }, url);
    if (!checks.check(loadError === null, loadError)) return;
    const read = () =>
      page.evaluate(() => ({
        now: Date.now(),
        currentTime: window.trick.video.currentTime,
        rate: window.trick.player.getPlaybackRate(),
        frames: window.trick.video.getVideoPlaybackQuality().totalVideoFrames,
        errors: window.trick.errors,
      }));
    const playing = await poll(read, (s) => s.currentTime > 0.8, 15_000);
    facts.startup = (Date.now() - t0) / 1000;
    if (!checks.check(playing.currentTime > 0.8, `playback did not start (at ${playing.currentTime.toFixed(2)} s)`)) return;
    checks.check(!requests.some(isKeyFrame), 'KeyFrames requested before trick play');

    const engaged = Date.now();
    await page.evaluate(() => window.trick.player.trickPlay(4));
    const fast = await poll(read, (s) => s.currentTime >= 6 || s.now - engaged > 3000, 4000);
    const keyFrames = requests.filter((r) => r.at >= engaged && isKeyFrame(r));
    const advanced = fast.currentTime - playing.currentTime;
    const wall = (fast.now - playing.now) / 1000;
    checks.check(fast.rate === 4, `playback rate ${fast.rate} in trick play`);
    checks.check(keyFrames.length > 0, 'no KeyFrames(…) request: Shaka did not use the trick-mode stream');
    checks.check(keyFrames.every((r) => r.status === 200), `KeyFrames statuses: ${keyFrames.map((r) => r.status).join(', ')}`);
    checks.check(advanced > wall * 1.5, `media time advanced ${advanced.toFixed(2)} s in ${wall.toFixed(2)} s at rate 4`);

    // Back to normal: the normal video stream is fetched again.
    await page.evaluate(() => window.trick.video.currentTime = 1);
    const cancelled = Date.now();
    await page.evaluate(() => window.trick.player.cancelTrickPlay());
    const normal = await poll(read, (s) => s.now - cancelled > 2500, 3000);
    const fragments = requests.filter((r) => r.at >= cancelled && isVideoFragment(r) && r.status === 200);
    checks.check(normal.rate === 1, `playback rate ${normal.rate} after cancelTrickPlay`);
    checks.check(fragments.length > 0, 'no Fragments(video=…) request after cancelTrickPlay');
    checks.check(normal.errors.length === 0, `player errors: ${normal.errors.join(', ')}`);
    facts.played = [advanced, wall];
    facts.frames = normal.frames;
    facts.errors = normal.errors.map((code) => ({ source: 'shaka', code, fatal: true }));
    facts.notes = `rate 4: ${keyFrames.length} KeyFrames requests; after cancel: ${fragments.length} video fragments`;
  };
}

for (const [label, manifest] of [
  ['DASH-CMAF trick-mode set', 'manifest(format=mpd-time-cmaf).mpd'],
  ['HLS-CMAF I-frame playlist', 'manifest(format=m3u8-cmaf).m3u8'],
  ['HLS-TS I-frame playlist', 'manifest(format=m3u8-aapl).m3u8'],
]) {
  matrix.push({ name: `shaka trick play ${label}`, run: trickPlay({ manifest }), live: false });
}
