// The end-to-end matrix: which player plays which URL of the fixture ladder (3 H.264
// renditions, AAC in English and French, 8 s) or of the live event, and what must happen.
import { livePlayback, playback, failure, operatorPage } from './cell.mjs';
import { LIVE_HEIGHTS } from './live.mjs';
import { thumbnails } from './thumbs.mjs';
import { KEYS, LIVE_EVENT, LIVE_LOCATORS, LOCATORS, token } from './origin.mjs';

/** URL of `resource` of the ladder under the locator for `protection`. */
const media = (protection, resource, query = '') => (env) =>
  `${env.origin}/${LOCATORS[protection]}/ladder.ism/${resource}${query}`;
const licence = (protection) => (env) => `${env.origin}/${LOCATORS[protection]}/clearkey`;

/** A key of the right KID with every byte flipped: decrypts to garbage. */
export const wrongKey = ({ kid, key }) => ({
  [kid]: Buffer.from(key, 'hex').map((b) => b ^ 0xff).toString('hex'),
});

/** Paths of the origin's raw key endpoint and its Clear Key licence endpoint. */
const KEY_PATH = /^\/[^/]+\/key\/[0-9a-f]{32}$/;
const LICENCE_PATH = /^\/[^/]+\/clearkey$/;
const keyRequests = (requests) => requests.filter((r) => KEY_PATH.test(new URL(r.url).pathname));

/** What a wrong key must give: the media element's MEDIA_ERR_DECODE (3), before any frame
 * came out (an expectation of `failure`). */
export const decodeError = (s) => [
  ...(s.errors.some((e) => e.source === 'video' && e.code === 'MEDIA_ERR 3') ? [] : ['no MEDIA_ERR_DECODE']),
  ...(s.decodedFrames === 0 ? [] : [`${s.decodedFrames} frames decoded with the wrong key`]),
];

const cells = [];
const add = (name, run, live = false) => cells.push({ name, run, live });

// Clear playback.
for (const [player, format, label] of [
  ['shaka', 'm3u8-cmaf', 'HLS-CMAF'],
  ['hlsjs', 'm3u8-cmaf', 'HLS-CMAF'],
  ['shaka', 'mpd-time-cmaf', 'DASH-CMAF'],
  ['dashjs', 'mpd-time-cmaf', 'DASH-CMAF'],
  ['shaka', 'mpd-time-csf', 'DASH-CSF'],
  ['dashjs', 'mpd-time-csf', 'DASH-CSF'],
  ['hlsjs', 'm3u8-aapl', 'HLS-TS'],
]) {
  const ext = format.startsWith('mpd') ? 'mpd' : 'm3u8';
  add(`${player} ${label}`, playback({ player, url: media('clear', `manifest(format=${format}).${ext}`) }));
}

// AES-128 envelope: the key comes from the origin's key endpoint, the token from the
// manifest URL (the playlists carry it on to the key URI).
for (const [player, format, label] of [
  ['hlsjs', 'm3u8-aapl', 'HLS-TS'],
  ['hlsjs', 'm3u8-cmaf', 'HLS-CMAF'],
  ['shaka', 'm3u8-aapl', 'HLS-TS'],
  ['shaka', 'm3u8-cmaf', 'HLS-CMAF'],
]) {
  const resource = `manifest(format=${format},encryption=cbc).m3u8`;
  add(
    `${player} ${label} AES-128 token`,
    playback({ player, url: (env) => media('envelope', resource, `?token=${token()}`)(env), keyFrom: KEY_PATH }),
  );
}

// Common Encryption with ClearKey: DASH players take the licence URL from the MPD
// (dashif:Laurl); Shaka on HLS uses the KEYFORMAT="identity" key URI, hls.js the
// KEYFORMAT="org.w3.clearkey" line with the licence URL from its config.
for (const [player, protection, encryption] of [
  ['shaka', 'cenc', 'cenc'],
  ['dashjs', 'cenc', 'cenc'],
  ['shaka', 'cbcs', 'cbcs-aapl'],
  ['dashjs', 'cbcs', 'cbcs-aapl'],
]) {
  add(
    `${player} DASH-CMAF ClearKey ${protection}`,
    playback({
      player,
      url: media(protection, `manifest(format=mpd-time-cmaf,encryption=${encryption}).mpd`),
      keyFrom: LICENCE_PATH,
    }),
  );
}
add(
  'shaka HLS-CMAF ClearKey cbcs',
  playback({ player: 'shaka', url: media('cbcs', 'manifest(format=m3u8-cmaf,encryption=cbcs-aapl).m3u8'), keyFrom: KEY_PATH }),
);
add(
  'hlsjs HLS-CMAF ClearKey cbcs',
  playback({
    player: 'hlsjs',
    url: media('cbcsLicence', 'manifest(format=m3u8-cmaf,encryption=cbcs-aapl).m3u8'),
    options: { licenseUrl: licence('cbcsLicence') },
    keyFrom: LICENCE_PATH,
  }),
);

// Switching audio language.
add('shaka HLS-CMAF audio eng→fra', playback({ player: 'shaka', url: media('clear', 'manifest(format=m3u8-cmaf).m3u8'), switchAudioTo: 'fra' }));
add('hlsjs HLS-CMAF audio eng→fra', playback({ player: 'hlsjs', url: media('clear', 'manifest(format=m3u8-cmaf).m3u8'), switchAudioTo: 'fra' }));
add('dashjs DASH-CMAF audio eng→fra', playback({ player: 'dashjs', url: media('clear', 'manifest(format=mpd-time-cmaf).mpd'), switchAudioTo: 'fra' }));

// Negative cells: a wrong key must give a decode error, a missing token a refused key.
for (const [player, protection, encryption] of [
  ['shaka', 'cenc', 'cenc'],
  ['dashjs', 'cenc', 'cenc'],
  ['shaka', 'cbcs', 'cbcs-aapl'],
  ['dashjs', 'cbcs', 'cbcs-aapl'],
]) {
  add(
    `${player} DASH-CMAF ${protection} wrong key ✗`,
    failure({
      player,
      url: media(protection, `manifest(format=mpd-time-cmaf,encryption=${encryption}).mpd`),
      options: { clearKeys: wrongKey(KEYS[protection]) },
      describe: 'decode error',
      expect: decodeError,
    }),
  );
}
for (const [player, format, label] of [
  ['hlsjs', 'm3u8-aapl', 'HLS-TS'],
  ['shaka', 'm3u8-cmaf', 'HLS-CMAF'],
]) {
  add(
    `${player} ${label} AES-128 no token ✗`,
    failure({
      player,
      url: media('envelope', `manifest(format=${format},encryption=cbc).m3u8`),
      describe: 'key refused',
      expect: (s, requests) => {
        const statuses = keyRequests(requests).map((r) => r.status);
        return [
          ...(statuses.length > 0 && statuses.every((st) => st === 401 || st === 403)
            ? []
            : [`key requests should all be refused with 401/403, got: ${statuses.join(', ') || 'none'}`]),
          ...(s.decodedFrames === 0 ? [] : [`${s.decodedFrames} frames decoded without the key`]),
        ];
      },
    }),
  );
}

// Scrub-bar thumbnails: Shaka Player's getThumbnails() on the DASH thumbnail_tile set and the
// HLS image playlist.
for (const [format, label] of [
  ['mpd-time-cmaf', 'DASH-CMAF'],
  ['m3u8-cmaf', 'HLS-CMAF'],
]) {
  const ext = format.startsWith('mpd') ? 'mpd' : 'm3u8';
  add(`shaka ${label} thumbnails`, thumbnails({ url: media('clear', `manifest(format=${format}).${ext}`) }));
}

// The origin's own test page, /player (enabled in the generated config, Shaka Player from the
// harness's server).
add('origin /player page (Shaka)', operatorPage({ url: () => `/${LOCATORS.clear}/ladder.ism/manifest(format=mpd-time-cmaf).mpd` }));

// Live: the event lib/live.mjs pushes over RTMP while the run lasts (3 renditions), played at
// its live edge for 10 s; clear, and Common Encryption with ClearKey: cenc on DASH and HLS, and
// cbcs on HLS as for VOD above (hls.js plays it with the licence URL, Shaka with the identity
// key URI).
const liveMedia = (protection, resource) => (env) =>
  `${env.origin}/${LIVE_LOCATORS[protection]}/${LIVE_EVENT.name}.ism/${resource}`;
const liveLicence = (protection) => (env) => `${env.origin}/${LIVE_LOCATORS[protection]}/clearkey`;
for (const [player, protection, format, encryption, keyFrom, options] of [
  ['shaka', 'clear', 'm3u8-cmaf'],
  ['hlsjs', 'clear', 'm3u8-cmaf'],
  ['shaka', 'clear', 'mpd-time-cmaf'],
  ['dashjs', 'clear', 'mpd-time-cmaf'],
  ['shaka', 'cenc', 'mpd-time-cmaf', 'cenc', LICENCE_PATH],
  ['dashjs', 'cenc', 'mpd-time-cmaf', 'cenc', LICENCE_PATH],
  ['shaka', 'cenc', 'm3u8-cmaf', 'cenc', KEY_PATH],
  ['hlsjs', 'cenc', 'm3u8-cmaf', 'cenc', LICENCE_PATH, { licenseUrl: liveLicence('cenc') }],
  ['shaka', 'cbcs', 'm3u8-cmaf', 'cbcs-aapl', KEY_PATH],
  ['hlsjs', 'cbcsLicence', 'm3u8-cmaf', 'cbcs-aapl', LICENCE_PATH, { licenseUrl: liveLicence('cbcsLicence') }],
]) {
  const ext = format.startsWith('mpd') ? 'mpd' : 'm3u8';
  const label = `${format.startsWith('mpd') ? 'DASH' : 'HLS'}-CMAF`;
  const keys = encryption ? `,encryption=${encryption}` : '';
  const name = `${player} live ${label}${encryption ? ` ClearKey ${protection === 'cbcsLicence' ? 'cbcs' : protection}` : ''}`;
  const url = liveMedia(protection, `manifest(format=${format}${keys}).${ext}`);
  add(name, livePlayback({ player, url, options, keyFrom, heights: LIVE_HEIGHTS }), true);
}

export const matrix = cells;
