import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { packageRoot } from '../../platform/package-root';

/** The UI's pages: each is the same shell (app.html), whose script renders the view the path names. */
export const UI_PAGES: ReadonlySet<string> = new Set(['/', '/alerts', '/runs', '/sessions', '/gaps']);

/**
 * Libraries the UI uses, served from node_modules as installed by npm (no CDN, no bundler): uPlot for
 * charts (MIT) and asciinema-player for SSH shell recordings (Apache-2.0).
 */
const VENDOR: Readonly<Record<string, string>> = {
  'vendor/uPlot.iife.min.js': 'uplot/dist/uPlot.iife.min.js',
  'vendor/uPlot.min.css': 'uplot/dist/uPlot.min.css',
  'vendor/asciinema-player.min.js': 'asciinema-player/dist/bundle/asciinema-player.min.js',
  'vendor/asciinema-player.css': 'asciinema-player/dist/bundle/asciinema-player.css',
};

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

export interface StaticAsset {
  contentType: string;
  body(): Buffer;
}

/** The UI's own files live next to this module's source, in collector/web/ui (not compiled). */
export function uiDir(): string {
  return join(packageRoot(), 'collector', 'web', 'ui');
}

let table: Map<string, string> | null = null;

function assets(): Map<string, string> {
  if (table) return table;
  const map = new Map<string, string>();
  for (const [name, module] of Object.entries(VENDOR)) map.set(name, require.resolve(module));
  for (const name of readdirSync(uiDir())) if (CONTENT_TYPES[extname(name)]) map.set(name, join(uiDir(), name));
  table = map;
  return map;
}

/** A file the server may send, by its name under /static/; anything not in the table does not exist. */
export function staticAsset(name: string): StaticAsset | null {
  const file = assets().get(name);
  if (file === undefined) return null;
  return { contentType: CONTENT_TYPES[extname(file)] ?? 'application/octet-stream', body: () => readFileSync(file) };
}
