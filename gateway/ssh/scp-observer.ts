import type { FileOperation } from './sftp-observer';

/**
 * The legacy scp protocol (`scp -O`, or scp before OpenSSH 9.0), which runs as an exec of
 * `scp -t <target>` (agent uploads) or `scp -f <source>` (agent downloads). The side that sends
 * files writes control lines, each answered by the other side with one byte (0 ok, 1 warning,
 * 2 fatal, followed by a message line):
 *
 *   C<mode> <size> <name>\n  then <size> bytes of file data, then one 0 byte
 *   D<mode> 0 <name>\n       enter a directory;  E\n  leave it
 *   T<mtime> 0 <atime> 0\n   times of the next file or directory
 *
 * The observer reads the sending side's stream in passing (file data is counted, not kept).
 */
export function scpDirection(command: string): { direction: 'upload' | 'download'; target: string } | null {
  const words = command.trim().split(/\s+/);
  if (words.length < 2 || !/(^|\/)scp$/.test(words[0]!)) return null;
  let direction: 'upload' | 'download' | null = null;
  let index = 1;
  for (; index < words.length; index++) {
    const word = words[index]!;
    if (word === '--') {
      index++;
      break;
    }
    if (!word.startsWith('-')) break;
    if (word.includes('t')) direction = 'upload';
    if (word.includes('f')) direction = 'download';
  }
  if (direction === null) return null;
  return { direction, target: words.slice(index).join(' ').replace(/^'(.*)'$/, '$1') };
}

enum ScpState {
  Line,
  Data,
  DataEnd,
}

const MAX_LINE = 4096;

export class ScpObserver {
  private state = ScpState.Line;
  private line: Buffer[] = [];
  private lineLength = 0;
  private remaining = 0;
  private readonly directories: string[] = [];
  private current: { name: string; mode: number; size: number; moved: number } | null = null;

  constructor(
    private readonly direction: 'upload' | 'download',
    private readonly target: string,
    private readonly report: (operation: FileOperation) => void,
  ) {}

  /** Bytes from the side that sends files (the agent for uploads, the server for downloads). */
  senderData(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.state === ScpState.Data) {
        const take = Math.min(this.remaining, chunk.length - offset);
        this.remaining -= take;
        this.current!.moved += take;
        offset += take;
        if (this.remaining === 0) this.state = ScpState.DataEnd;
        continue;
      }
      if (this.state === ScpState.DataEnd) {
        // The sender's status byte after the data: 0 when the file was read completely.
        const ok = chunk[offset] === 0;
        offset++;
        this.finishFile(ok ? 'ok' : 'sender reported an error');
        this.state = ScpState.Line;
        continue;
      }
      const newline = chunk.indexOf(0x0a, offset);
      const end = newline === -1 ? chunk.length : newline;
      if (this.lineLength + (end - offset) <= MAX_LINE) this.line.push(chunk.subarray(offset, end));
      this.lineLength += end - offset;
      offset = end;
      if (newline === -1) return;
      offset++;
      const text = Buffer.concat(this.line).toString('utf8');
      this.line = [];
      this.lineLength = 0;
      this.controlLine(text);
    }
  }

  /** The channel closed: a file cut off mid-transfer is reported with what arrived. */
  finish(): void {
    if (this.current) this.finishFile('incomplete');
  }

  private path(name: string): string {
    const base = this.target === '' ? '.' : this.target;
    // A download's first D line is the source directory itself, already named by the command.
    const inner = this.direction === 'download' ? this.directories.slice(1) : this.directories;
    return [base, ...inner, name].filter((part) => part !== '').join('/');
  }

  private controlLine(text: string): void {
    const kind = text[0];
    if (kind === 'C' || kind === 'D') {
      const match = /^[CD]([0-7]{4}) (\d+) (.*)$/.exec(text);
      if (!match) return;
      const mode = Number.parseInt(match[1]!, 8);
      if (kind === 'D') {
        this.directories.push(match[3]!);
        this.report({ operation: 'mkdir', path: this.path(''), direction: this.direction, bytes: '0', size: '0', status: 'ok', mode });
        return;
      }
      const size = Number(match[2]);
      this.current = { name: match[3]!, mode, size, moved: 0 };
      this.remaining = size;
      this.state = size > 0 ? ScpState.Data : ScpState.DataEnd;
    } else if (kind === 'E') {
      this.directories.pop();
    }
  }

  private finishFile(status: string): void {
    const file = this.current!;
    this.current = null;
    this.report({
      operation: this.direction === 'upload' ? 'write' : 'read',
      path: this.direction === 'download' && this.directories.length === 0 ? this.target || file.name : this.path(file.name),
      direction: this.direction,
      bytes: String(file.moved),
      size: String(file.size),
      status,
      mode: file.mode,
    });
  }
}
