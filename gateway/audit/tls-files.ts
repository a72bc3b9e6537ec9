import { readFileSync } from 'node:fs';
import { AuditTlsFileError } from './errors';

/**
 * Reads a PEM file, naming its role in the error so the operator knows which setting is wrong. Another
 * service served over the same kind of mutual TLS passes its own error (its own code and setting names).
 */
export function readPem(role: string, file: string, failure: (role: string, file: string, cause: unknown) => Error = (r, f, c) => new AuditTlsFileError(r, f, c)): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    throw failure(role, file, err);
  }
  if (!pem.includes('-----BEGIN ')) throw failure(role, file, new Error('not a PEM file (no -----BEGIN line)'));
  return pem;
}
