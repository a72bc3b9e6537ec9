import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { WebSocketFrameCounter } from '../../../gateway/http/websocket-frame-counter';

/** Builds one frame as RFC 6455 §5.2 lays it out, masked when a key is given. */
function frame(opcode: number, payload: Buffer, mask: Buffer | null): Buffer {
  const head: number[] = [0x80 | opcode];
  const maskBit = mask ? 0x80 : 0;
  if (payload.length < 126) head.push(maskBit | payload.length);
  else if (payload.length < 65536) head.push(maskBit | 126, payload.length >> 8, payload.length & 0xff);
  else {
    head.push(maskBit | 127);
    const length = Buffer.alloc(8);
    length.writeBigUInt64BE(BigInt(payload.length));
    head.push(...length);
  }
  const body = mask ? Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!)) : payload;
  return Buffer.concat([Buffer.from(head), ...(mask ? [mask] : []), body]);
}

describe('gateway/http WebSocket frame counter', () => {
  it('counts frames of every length form however the bytes are split, and reads the close code', () => {
    const close = Buffer.from([0x03, 0xe9, 0x62, 0x79, 0x65]); // 1001 "bye"
    for (const mask of [null, randomBytes(4)]) {
      const stream = Buffer.concat([
        frame(0x1, Buffer.from('hello'), mask),
        frame(0x2, randomBytes(300), mask),
        frame(0x2, randomBytes(70_000), mask),
        frame(0x9, Buffer.alloc(0), mask),
        frame(0x8, close, mask),
      ]);
      for (const piece of [1, 7, 1000, stream.length]) {
        const counter = new WebSocketFrameCounter();
        for (let i = 0; i < stream.length; i += piece) counter.push(stream.subarray(i, i + piece));
        assert.equal(counter.frames, 5, `mask ${mask !== null}, pieces of ${piece}`);
        assert.equal(counter.bytes, stream.length);
        assert.equal(counter.closeCode, 1001);
      }
    }
  });
});
