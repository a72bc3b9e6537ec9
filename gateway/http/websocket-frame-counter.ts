import { WebSocketOpcode } from './protocol';

/**
 * Counts WebSocket frames (RFC 6455 §5.2) in one direction of an upgraded connection as the bytes
 * pass, without buffering payloads: it reads each frame header, then skips the payload length.
 *
 *   byte 0: FIN, RSV1-3, opcode (4 bits)    byte 1: MASK, payload length (7 bits)
 *   length 126 → 16-bit length follows; 127 → 64-bit length; then the 4-byte masking key if MASK.
 *
 * Of a Close frame it reads the first two payload bytes: the status code (unmasked with the key).
 */
export class WebSocketFrameCounter {
  frames = 0;
  bytes = 0;
  closeCode = 0;
  private header: number[] = [];
  private need = 2;
  private remaining = 0n;
  private opcode = 0;
  private mask: number[] | null = null;
  private closeBytes: number[] | null = null;
  private payloadOffset = 0;

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining > 0n) {
        const take = Number(this.remaining < BigInt(chunk.length - i) ? this.remaining : BigInt(chunk.length - i));
        if (this.closeBytes !== null && this.closeBytes.length < 2) {
          for (let k = 0; k < take && this.closeBytes.length < 2; k++) {
            const byte = chunk[i + k]!;
            this.closeBytes.push(this.mask ? byte ^ this.mask[(this.payloadOffset + k) % 4]! : byte);
          }
          if (this.closeBytes.length === 2 && this.closeCode === 0) this.closeCode = (this.closeBytes[0]! << 8) | this.closeBytes[1]!;
        }
        this.payloadOffset += take;
        this.remaining -= BigInt(take);
        i += take;
        continue;
      }
      this.header.push(chunk[i]!);
      i += 1;
      if (this.header.length === 2) {
        const length7 = this.header[1]! & 0x7f;
        const masked = (this.header[1]! & 0x80) !== 0;
        this.need = 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) + (masked ? 4 : 0);
      }
      if (this.header.length >= 2 && this.header.length === this.need) this.frameHeaderDone();
    }
  }

  private frameHeaderDone(): void {
    const h = this.header;
    this.opcode = h[0]! & 0x0f;
    const masked = (h[1]! & 0x80) !== 0;
    const length7 = h[1]! & 0x7f;
    let offset = 2;
    let length = BigInt(length7);
    if (length7 === 126) {
      length = BigInt((h[2]! << 8) | h[3]!);
      offset = 4;
    } else if (length7 === 127) {
      length = 0n;
      for (let k = 2; k < 10; k++) length = (length << 8n) | BigInt(h[k]!);
      offset = 10;
    }
    this.mask = masked ? h.slice(offset, offset + 4) : null;
    this.frames += 1;
    this.closeBytes = this.opcode === WebSocketOpcode.Close ? [] : null;
    this.payloadOffset = 0;
    this.remaining = length;
    this.header = [];
    this.need = 2;
  }
}
