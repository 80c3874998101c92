// A tiny static HTTP server for the harness page and the player libraries, on its own
// ephemeral port: a different origin from jit-origin, so every player request is cross-origin
// and CORS is exercised as in production.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const modules = path.join(root, 'node_modules');

/** URL path → file. Only these are served (no directory walking). */
const FILES = {
  '/page/index.html': path.join(root, 'page/index.html'),
  '/page/harness.js': path.join(root, 'page/harness.js'),
  '/lib/shaka-player.js': path.join(modules, 'shaka-player/dist/shaka-player.compiled.js'),
  '/lib/hls.js': path.join(modules, 'hls.js/dist/hls.min.js'),
  '/lib/dash.js': path.join(modules, 'dashjs/dist/modern/umd/dash.all.min.js'),
  // Smooth Streaming: dash.js 5 keeps it out of dash.all (dash.mss adds dashjs.MssHandler), and
  // Shaka Player 5 removed it, so Shaka plays Smooth from its 4.16 line (package alias), whose
  // Smooth transmuxer needs codem-isoboxer as the global ISOBoxer.
  '/lib/dash.mss.js': path.join(modules, 'dashjs/dist/modern/umd/dash.mss.min.js'),
  '/lib/shaka-player-mss.js': path.join(modules, 'shaka-player-mss/dist/shaka-player.compiled.js'),
  '/lib/iso_boxer.js': path.join(modules, 'codem-isoboxer/dist/iso_boxer.min.js'),
};

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8' };

/** Starts the server on 127.0.0.1; resolves to { origin, close() }. */
export async function startStatic() {
  const server = http.createServer((req, res) => {
    const file = FILES[new URL(req.url, 'http://localhost').pathname];
    if (!file || req.method !== 'GET') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    fs.readFile(file, (err, body) => {
      if (err) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`);
        return;
      }
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)], 'cache-control': 'no-store' }).end(body);
    });
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
