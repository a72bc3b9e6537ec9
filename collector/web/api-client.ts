import { readFileSync } from 'node:fs';
import type { OutputFormat } from '../store/query';
import { tokenFile } from './access-token';
import { WebApiFailedError, WebApiUnreachableError } from './errors';
import { addressFile, type WebAddress } from './web-component';

/**
 * The running collector's web API as a client of it: `gapwatch query` uses it when the embedded store is
 * held by `gapwatch up` (the engine binds its data directory to one process). The address and token come
 * from the data directory, which only the user who runs gapwatch can read.
 */
export function runningWebApi(dataDir: string): { url: string; token: string } | null {
  try {
    const address = JSON.parse(readFileSync(addressFile(dataDir), 'utf8')) as WebAddress;
    const token = readFileSync(tokenFile(dataDir), 'utf8').trim();
    return { url: address.url, token };
  } catch {
    return null;
  }
}

/** Runs a named query through the API and returns its output in the CLI's format. */
export async function queryThroughWebApi(
  api: { url: string; token: string },
  name: string,
  params: Readonly<Record<string, string>>,
  format: OutputFormat,
): Promise<string> {
  const search = new URLSearchParams({ ...params, _format: format });
  const url = `${api.url}/api/queries/${encodeURIComponent(name)}?${search.toString()}`;
  let response: Response;
  try {
    response = await fetch(url, { headers: { Authorization: `Bearer ${api.token}` } });
  } catch (err) {
    throw new WebApiUnreachableError(api.url, err);
  }
  const body = await response.text();
  if (!response.ok) {
    let detail = body;
    try {
      detail = (JSON.parse(body) as { error: { message: string } }).error.message;
    } catch {
      // Not the API's JSON error form: the body as it came is the best description.
    }
    throw new WebApiFailedError(api.url, response.status, detail);
  }
  return body;
}
