// jit-origin under test: a generated configuration (fixtures from this repository, one locator
// per protection the matrix plays), the debug binary on an ephemeral port, and HS256 tokens.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** Locator ids by protection. `cbcs` signals Clear Key in HLS with the raw key URL
 * (KEYFORMAT="identity", Shaka), `cbcsLicence` with the licence URL only
 * (KEYFORMAT="org.w3.clearkey", hls.js): hls.js cannot play cbcs next to an identity key. */
export const LOCATORS = {
  clear: 'e2e-clear',
  envelope: 'e2e-envelope',
  cenc: 'e2e-cenc',
  cbcs: 'e2e-cbcs',
  cbcsLicence: 'e2e-cbcs-licence',
};

/** Locator of the subtitles fixture (WebVTT sidecars named in its .ism), for the text cells. */
export const TEXT_LOCATOR = 'e2e-subtitles';

/** The live event the live cells play (pushed by lib/live.mjs), and its locators by
 * protection, with the same keys as the VOD ones. */
export const LIVE_EVENT = { name: 'e2e-live', token: crypto.randomBytes(16).toString('hex') };
export const LIVE_LOCATORS = Object.fromEntries(Object.entries(LOCATORS).map(([p, id]) => [p, id.replace('e2e-', 'e2e-live-')]));

/** Content keys of the protected locators (test values). */
export const KEYS = {
  envelope: { kid: '0b6f3a5e9c2d4e8f8a1b3c5d7e9f1a2b', key: '3c9e1f7a5b2d4c6e8f0a1b3d5e7f9a1c' },
  cenc: { kid: '9eb4050de44b4802932e27d75083e266', key: '166634c675823c235a4a9446fad52e4d' },
  cbcs: { kid: 'd1a5b2c3e4f5a6b7c8d9e0f1a2b3c4d5', key: 'a0b1c2d3e4f5061728394a5b6c7d8e9f' },
};
KEYS.cbcsLicence = KEYS.cbcs;

const ISSUER = 'https://issuer.e2e.test';
const AUDIENCE = 'jit-origin-e2e';
// A fresh HS256 secret per run: tokens are only valid against this origin process.
const SECRET = crypto.randomBytes(32);

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** An HS256 JWT the envelope locator accepts (valid for an hour). */
export function token() {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const claims = b64url(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 3600, sub: 'e2e' }));
  const signature = crypto.createHmac('sha256', SECRET).update(`${header}.${claims}`).digest('base64url');
  return `${header}.${claims}.${signature}`;
}

/** A TCP port that was free a moment ago (the config must name the origin's own address). */
async function freePort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function configText({ port, rtmpPort, media, fixtures, playerScriptUrl }) {
  const base = `http://127.0.0.1:${port}`;
  const locator = (id, policy, keys, storage = 'fixtures', asset = 'ladder') =>
    `[[locator]]\nid = "${id}"\nstorage = "${storage}"\nasset = "${asset}"\npolicy = "${policy}"\n` +
    (keys ? `keys = [{ kid = "${keys.kid}", key = "${keys.key}" }]\n` : '');
  const live = (protection, policy) =>
    locator(LIVE_LOCATORS[protection], policy, KEYS[protection], 'live', `live/${LIVE_EVENT.name}`);
  // Widevine and PlayReady are signalled too, as in a multi-DRM deployment: Chromium here has
  // no CDM for them, so players must pass over them to Clear Key.
  const licence =
    `[locator.drm]\nclearkey_license_url = "${base}/{locator}/clearkey"\n` +
    `widevine_license_url = "${base}/no-widevine/{kid}"\nplayready_license_url = "${base}/no-playready/{kid}"\n`;
  const licenceAndKey = `${licence}clearkey_key_url = "${base}/{locator}/key/{kid}"\n`;
  return [
    `listen = "127.0.0.1:${port}"`,
    playerScriptUrl ? `[player]\nenabled = true\nscript_url = "${playerScriptUrl}"` : '',
    // Small tiles of 1 s thumbnails, so the 8 s ladder has several (lib/thumbs.mjs).
    `[thumbnails]\ncolumns = 3\nrows = 2\ninterval_secs = 1`,
    `[ingest]\nrtmp_listen = "127.0.0.1:${rtmpPort}"`,
    `[[storage]]\nname = "fixtures"\nurl = "file://${fixtures}"`,
    `[[storage]]\nname = "live"\nurl = "file://${media}"`,
    `[[live_event]]\nname = "${LIVE_EVENT.name}"\naccess_token = "${LIVE_EVENT.token}"\nstorage = "live"\n` +
      `folder = "live/${LIVE_EVENT.name}"\ndvr_window_secs = 120`,
    locator(LOCATORS.clear, 'clear'),
    locator(TEXT_LOCATOR, 'clear', null, 'fixtures', 'subtitles'),
    locator(LOCATORS.envelope, 'envelope', KEYS.envelope) +
      `[locator.key_access]\nmode = "token"\nissuer = "${ISSUER}"\naudience = "${AUDIENCE}"\n` +
      `hs256_secret_base64 = "${SECRET.toString('base64')}"`,
    locator(LOCATORS.cenc, 'cenc', KEYS.cenc) + licenceAndKey,
    locator(LOCATORS.cbcs, 'cbcs', KEYS.cbcs) + licenceAndKey,
    locator(LOCATORS.cbcsLicence, 'cbcs', KEYS.cbcsLicence) + licence,
    live('clear', 'clear'),
    live('cenc', 'cenc') + licenceAndKey,
    live('cbcs', 'cbcs') + licenceAndKey,
    live('cbcsLicence', 'cbcs') + licence,
  ].join('\n');
}

/**
 * Writes a configuration to a temporary folder (with a storage folder for the live event) and
 * starts `bin serve` with it; resolves once /healthz answers, to { base, rtmpPort, configPath,
 * stop(), log() }.
 */
export async function startOrigin({ bin, fixtures, playerScriptUrl }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jit-origin-e2e-'));
  const port = await freePort();
  const rtmpPort = await freePort();
  const media = path.join(dir, 'media');
  fs.mkdirSync(media);
  const configPath = path.join(dir, 'origin.toml');
  fs.writeFileSync(configPath, configText({ port, rtmpPort, media, fixtures, playerScriptUrl }));
  const child = spawn(bin, ['serve', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  const base = `http://127.0.0.1:${port}`;
  const stop = async () => {
    child.kill('SIGTERM');
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    const status = await fetch(`${base}/healthz`).then((r) => r.status, () => 0);
    if (status === 200) break;
    const early = await Promise.race([exited, new Promise((r) => setTimeout(() => r(undefined), 100))]);
    if (early !== undefined || Date.now() > deadline) {
      await stop();
      throw new Error(`jit-origin did not start (${early !== undefined ? `exit ${early}` : 'timeout'}):\n${output}`);
    }
  }
  return { base, rtmpPort, configPath, stop, log: () => output };
}
