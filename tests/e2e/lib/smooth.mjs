// Smooth Streaming (MS-SSTR) cells: the fixture ladder's client manifest (`…/ladder.ism/manifest`)
// in dash.js (dash.all with its MSS module) and in Shaka Player's 4.16 line (Shaka 5 removed
// Smooth). Players build the init segments from the manifest's CodecPrivateData, so playing at
// all checks the QualityLevels; the cells also seek, force the other video rendition and switch
// audio to French, and dash.js plays the `cenc` stream with Clear Key keys given by the page
// (PlayReady itself is not in Chromium). Importing this module adds the cells to the matrix
// (run.mjs).
import crypto from 'node:crypto';

import { failure, playback } from './cell.mjs';
import { decodeError, matrix, wrongKey } from './matrix.mjs';
import { KEYS, LOCATORS } from './origin.mjs';

const manifest = (protection, resource) => (env) => `${env.origin}/${LOCATORS[protection]}/ladder.ism/${resource}`;
const CENC_MANIFEST = 'manifest(encryption=cenc)';

/** A video fragment of the rendition of `bitrate` (MS-SSTR §2.2.3, the fragment request). */
const videoFragment = (bitrate) => `QualityLevels(${bitrate})/Fragments(video=`;

/** The PlayReady system ID of `ProtectionHeader` (MS-SSTR §2.2.2.2). */
const PLAYREADY_SYSTEM_ID = '9a04f079-9840-4286-ab92-e65be0885f95';

/** A GUID's bytes in the little-endian field order PlayReady writes, from the hex UUID. */
const guidBytes = (hex) => {
  const b = Buffer.from(hex, 'hex');
  return Buffer.concat([b.subarray(0, 4).reverse(), b.subarray(4, 6).reverse(), b.subarray(6, 8).reverse(), b.subarray(8)]);
};

/**
 * Reads the manifest's ProtectionHeader back (PlayReady Header Specification: the PlayReady
 * Object, little-endian length and record count, record type 1 the UTF-16LE WRMHEADER) and
 * checks its KID is the locator's and its CHECKSUM the first 8 bytes of the KID encrypted
 * with the key (AES-128 ECB), the way a PlayReady client verifies the key it was given.
 */
async function checkProtectionHeader({ env, checks, facts }, { kid, key }) {
  const response = await fetch(manifest('cenc', CENC_MANIFEST)(env));
  const text = await response.text();
  checks.check(response.status === 200, `the cenc manifest answered ${response.status}: ${text.slice(0, 200)}`);
  const header = /<ProtectionHeader\s+SystemID="([^"]+)"\s*>([^<]+)<\/ProtectionHeader>/.exec(text);
  if (!checks.check(header, 'no ProtectionHeader in the cenc manifest')) return;
  checks.check(header[1].toLowerCase() === PLAYREADY_SYSTEM_ID, `ProtectionHeader SystemID ${header[1]}`);
  const pro = Buffer.from(header[2].trim(), 'base64');
  const records = [];
  if (checks.check(pro.length >= 6 && pro.readUInt32LE(0) === pro.length, `PlayReady Object length field vs ${pro.length} bytes`)) {
    for (let at = 6, n = pro.readUInt16LE(4); n > 0 && at + 4 <= pro.length; n -= 1) {
      const length = pro.readUInt16LE(at + 2);
      records.push({ type: pro.readUInt16LE(at), value: pro.subarray(at + 4, at + 4 + length) });
      at += 4 + length;
    }
  }
  const wrm = records.find((r) => r.type === 1);
  if (!checks.check(wrm, `no WRMHEADER record (record types: ${records.map((r) => r.type).join(', ')})`)) return;
  const xml = wrm.value.toString('utf16le');
  const field = (name) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];
  const kidBytes = Buffer.from(field('KID') ?? '', 'base64');
  const expectedKid = guidBytes(kid);
  checks.check(kidBytes.equals(expectedKid), `WRMHEADER KID ${field('KID')}, expected ${expectedKid.toString('base64')} (${kid})`);
  const cipher = crypto.createCipheriv('aes-128-ecb', Buffer.from(key, 'hex'), null).setAutoPadding(false);
  const checksum = Buffer.concat([cipher.update(expectedKid), cipher.final()]).subarray(0, 8).toString('base64');
  checks.check(field('CHECKSUM') === checksum, `WRMHEADER CHECKSUM ${field('CHECKSUM')}, expected ${checksum}`);
  facts.notes = `ProtectionHeader KID ${field('KID')} and CHECKSUM verified`;
}

/** A Smooth cenc cell: the ProtectionHeader read back, then `run` with the page's keys. */
const withProtectionHeader = (run) => async (context) => {
  await checkProtectionHeader(context, KEYS.cenc);
  const notes = context.facts.notes;
  context.facts.notes = undefined;
  await run(context);
  context.facts.notes = [notes, context.facts.notes].filter(Boolean).join('; ');
};

const clearKeys = { [KEYS.cenc.kid]: KEYS.cenc.key };
const clear = manifest('clear', 'manifest');

for (const [player, label] of [
  ['dashjs-mss', 'dashjs'],
  ['shaka-mss', 'shaka 4.16'],
]) {
  const add = (name, run) => matrix.push({ name: `${label} Smooth${name}`, run, live: false });
  add('', playback({ player, url: clear }));
  add(' rendition switch', playback({ player, url: clear, playMs: 2000, switchVideo: videoFragment }));
  add(' audio eng→fra', playback({ player, url: clear, switchAudioTo: 'fra' }));
  // The version 2.0 manifest: one c per chunk, no r (MS-SSTR §2.2.2.6).
  add(' 2.0', playback({ player, url: manifest('clear', 'manifest(format=fmp4-v20)') }));
}

// Common Encryption: dash.js with the page's Clear Key keys (and Clear Key offered next to the
// manifest's PlayReady, see page/harness.js). Not Shaka 4.16: with `drm.clearKeys` its init
// segment generator (Mp4Generator.psshs) copies every DrmInfo's init data into the moov as if
// it were a pssh box, and the Clear Key DrmInfo's is `keyids` JSON, so Chromium refuses the
// init segment (MEDIA_SOURCE_OPERATION_FAILED before any fragment); the manifest's PlayReady is
// the only other system it offers.
matrix.push({
  name: 'dashjs Smooth ClearKey cenc',
  run: withProtectionHeader(playback({ player: 'dashjs-mss', url: manifest('cenc', CENC_MANIFEST), options: { clearKeys } })),
  live: false,
});

// A wrong key must not decode: the fragments really are encrypted with the locator's key.
matrix.push({
  name: 'dashjs Smooth cenc wrong key ✗',
  run: failure({
    player: 'dashjs-mss',
    url: manifest('cenc', CENC_MANIFEST),
    options: { clearKeys: wrongKey(KEYS.cenc) },
    describe: 'decode error',
    expect: decodeError,
  }),
  live: false,
});
