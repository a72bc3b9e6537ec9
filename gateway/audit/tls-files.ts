import { readFileSync } from 'node:fs';
import { AuditTlsFileError } from './errors';

/** Reads a PEM file, naming its role in the error so the operator knows which setting is wrong. */
export function readPem(role: string, file: string): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    throw new AuditTlsFileError(role, file, err);
  }
  if (!pem.includes('-----BEGIN ')) throw new AuditTlsFileError(role, file, new Error('not a PEM file (no -----BEGIN line)'));
  return pem;
}
