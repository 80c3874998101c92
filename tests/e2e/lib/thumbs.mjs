// Scrub-bar thumbnails in a player: Shaka Player lists the origin's thumbnail track (the DASH
// thumbnail_tile set, or the HLS EXT-X-IMAGE-STREAM-INF) and answers getThumbnails(time) with
// the tile's URI and the thumbnail's place in its grid. The e2e origin makes 3x2 tiles of 1 s
// thumbnails (lib/origin.mjs), so the 8 s ladder (its 256x144 rendition at timescale 12288,
// first presentation time 1024) has tiles at 0, 6 s.
import { startPlayer, waitFor } from './cell.mjs';

const TIMESCALE = 12288;
const FIRST = 1024;
const THUMB = { width: 240, height: 134 };

/** (time, tile index, cell index) probes and what Shaka must answer for each. */
const PROBES = [
  { at: 0.5, tile: 0, cell: 0 },
  { at: 4.5, tile: 0, cell: 4 },
  { at: 7.5, tile: 1, cell: 1 },
];

export function thumbnails({ url }) {
  return async ({ page, env, checks, facts }) => {
    await startPlayer(page, env, 'shaka', url(env));
    const s = await waitFor(page, (st) => st.readyState >= 2, 20_000);
    if (!checks.check(s !== null && s.errors.every((e) => !e.fatal), 'the ladder did not load')) return;
    facts.thumbnails = [];
    for (const { at, tile, cell } of PROBES) {
      const got = await page.evaluate((t) => window.e2e.thumbnail(t), at);
      facts.thumbnails.push(got);
      if (!checks.check(got && got.tracks === 1, `at ${at} s: ${JSON.stringify(got)} (one image track expected)`)) return;
      const time = FIRST + tile * 6 * TIMESCALE;
      const uri = (got.uris || [])[0] || '';
      checks.check(
        uri.endsWith(`/QualityLevels(150000)/Thumbnails(video=${time}).jpg`),
        `at ${at} s: tile ${uri || 'none'}, expected Thumbnails(video=${time})`,
      );
      const [x, y] = [(cell % 3) * THUMB.width, Math.floor(cell / 3) * THUMB.height];
      checks.check(
        got.positionX === x && got.positionY === y && got.width === THUMB.width && got.height === THUMB.height,
        `at ${at} s: cell at ${got.positionX},${got.positionY} size ${got.width}x${got.height}, expected ${x},${y} size ${THUMB.width}x${THUMB.height}`,
      );
      // The tile itself is served.
      const status = await page.evaluate((u) => fetch(u).then((r) => r.status), uri);
      checks.check(status === 200, `tile ${uri}: ${status}`);
    }
  };
}
