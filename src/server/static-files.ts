/**
 * The dashboard's static files (the `dashboard/` folder of the package: index.html, app.js,
 * style.css), read once at start and served from memory by exact path, so no request path ever
 * reaches the file system. No CDN, nothing fetched from elsewhere: the page works offline.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

export interface StaticFile {
  readonly contentType: string;
  readonly body: string;
}

/** Request path -> file. */
export type DashboardFiles = ReadonlyMap<string, StaticFile>;

/** The package's dashboard folder: two levels up from src/server/ and from dist/server/ alike. */
const DASHBOARD_DIR = new URL('../../dashboard/', import.meta.url);

const FILES: readonly { readonly paths: readonly string[]; readonly file: string; readonly contentType: string }[] = [
  { paths: ['/', '/index.html'], file: 'index.html', contentType: 'text/html; charset=utf-8' },
  { paths: ['/app.js'], file: 'app.js', contentType: 'text/javascript; charset=utf-8' },
  { paths: ['/style.css'], file: 'style.css', contentType: 'text/css; charset=utf-8' },
];

/**
 * The dashboard's files. A missing folder (a build that left it out) leaves the page away, with a
 * note on `/` saying so; the API still works.
 */
export async function loadDashboard(dir: URL = DASHBOARD_DIR): Promise<DashboardFiles> {
  const files = new Map<string, StaticFile>();
  for (const entry of FILES) {
    let body: string;
    try {
      body = await readFile(fileURLToPath(new URL(entry.file, dir)), 'utf8');
    } catch {
      const missing = {
        contentType: 'text/plain; charset=utf-8',
        body: `the dashboard's files are missing from this installation (${fileURLToPath(dir)}); the API routes work\n`,
      };
      return new Map([['/', missing]]);
    }
    for (const path of entry.paths) files.set(path, { contentType: entry.contentType, body });
  }
  return files;
}
