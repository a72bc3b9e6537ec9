import { createHash, type Hash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * An interactive shell recorded in asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/):
 * a header line of JSON, then one JSON array per event `[seconds, code, data]`, code "o" for
 * output, "i" for input, "r" for a resize ("COLSxROWS"). Output and resizes go to `<name>.cast`;
 * input goes to `<name>.input.cast`, a second asciicast file with the same header, because
 * keystrokes can hold passwords typed at a prompt and must be handled as secrets. Both files are
 * 0600 in a 0700 directory, and their SHA-256 is journaled when they are finished.
 */
export class AsciicastRecorder {
  readonly path: string;
  readonly inputPath: string;
  private readonly output: CastFile;
  private readonly input: CastFile;
  private readonly started = process.hrtime.bigint();
  outputBytes = 0;
  inputBytes = 0;

  constructor(directory: string, name: string, header: { width: number; height: number; term: string; title: string }) {
    mkdirSync(directory, { recursive: true, mode: 0o700 });
    this.path = join(directory, `${name}.cast`);
    this.inputPath = join(directory, `${name}.input.cast`);
    const line = `${JSON.stringify({
      version: 2,
      width: header.width,
      height: header.height,
      timestamp: Math.floor(Date.now() / 1000),
      env: { TERM: header.term },
      title: header.title,
    })}\n`;
    this.output = new CastFile(this.path, line);
    this.input = new CastFile(this.inputPath, line);
  }

  private seconds(): number {
    return Number(process.hrtime.bigint() - this.started) / 1e9;
  }

  recordOutput(data: Buffer): void {
    this.outputBytes += data.length;
    this.output.event(this.seconds(), 'o', data);
  }

  recordInput(data: Buffer): void {
    this.inputBytes += data.length;
    this.input.event(this.seconds(), 'i', data);
  }

  recordResize(cols: number, rows: number): void {
    this.output.event(this.seconds(), 'r', Buffer.from(`${cols}x${rows}`));
  }

  /** Flushes and closes both files; returns their SHA-256 (hex). */
  finish(): { outputSha256: string; inputSha256: string } {
    return { outputSha256: this.output.close(), inputSha256: this.input.close() };
  }
}

class CastFile {
  private fd: number | null;
  private readonly hash: Hash = createHash('sha256');
  /** Bytes of a UTF-8 sequence split across chunks, kept until the rest arrives. */
  private carry = Buffer.alloc(0);

  constructor(path: string, header: string) {
    this.fd = openSync(path, 'wx', 0o600);
    this.write(header);
  }

  private write(text: string): void {
    if (this.fd === null) return;
    const bytes = Buffer.from(text, 'utf8');
    this.hash.update(bytes);
    writeSync(this.fd, bytes);
  }

  event(seconds: number, code: string, data: Buffer): void {
    const bytes = this.carry.length > 0 ? Buffer.concat([this.carry, data]) : data;
    const cut = completeUtf8Length(bytes);
    this.carry = Buffer.from(bytes.subarray(cut));
    if (cut === 0) return;
    this.write(`${JSON.stringify([Number(seconds.toFixed(6)), code, bytes.subarray(0, cut).toString('utf8')])}\n`);
  }

  close(): string {
    if (this.fd !== null) {
      fsyncSync(this.fd);
      closeSync(this.fd);
      this.fd = null;
    }
    return this.hash.digest('hex');
  }
}

/** The length of the longest prefix that does not end inside a UTF-8 sequence. */
function completeUtf8Length(bytes: Buffer): number {
  const end = bytes.length;
  for (let back = 1; back <= Math.min(3, end); back++) {
    const byte = bytes[end - back]!;
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte: look further back for the lead
    const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return need > back ? end - back : end;
  }
  return end;
}
