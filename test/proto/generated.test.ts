import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { generateProtoTypes } from '../../proto/generate';
import { loadGapwatchProto } from '../../proto/load';
import { generatedDir } from '../../proto/options';

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? listFiles(path) : [path];
  });
}

describe('proto', () => {
  it('generated TypeScript matches the .proto files (run `npm run proto:gen` when this fails)', () => {
    const fresh = mkdtempSync(join(tmpdir(), 'gapwatch-proto-'));
    generateProtoTypes(fresh);
    const committed = generatedDir();
    const freshFiles = listFiles(fresh).map((f) => relative(fresh, f)).sort();
    const committedFiles = listFiles(committed).map((f) => relative(committed, f)).sort();
    assert.deepEqual(committedFiles, freshFiles, 'generated file set differs');
    for (const file of freshFiles) {
      assert.equal(readFileSync(join(committed, file), 'utf8'), readFileSync(join(fresh, file), 'utf8'), `${file} is stale`);
    }
  });

  it('loads the Audit service and round-trips a journal record', () => {
    const proto = loadGapwatchProto();
    const service = proto.gapwatch.v1.Audit.service;
    assert.deepEqual(Object.keys(service).sort(), ['ListResources', 'Subscribe']);
    assert.equal(service.Subscribe.responseStream, true);
    const record = {
      gatewayId: 'gw-local',
      seq: '42',
      prevHash: Buffer.alloc(32, 1),
      hash: Buffer.alloc(32, 2),
      timeUnixNano: '1764000000000000000',
      event: { sessionId: 's-1', eventSeq: '1', timeUnixNano: '1', statement: { text: 'select 1', parameters: [], commandTag: 'SELECT 1', rows: '1' } },
    };
    const encoded = service.Subscribe.responseSerialize(record);
    const decoded = service.Subscribe.responseDeserialize(encoded);
    assert.equal(decoded.seq, '42');
    assert.equal(decoded.body, 'event');
    assert.equal(decoded.event?.statement?.text, 'select 1');
    assert.equal(decoded.event?.detail, 'statement');
    assert.deepEqual(decoded.prevHash, Buffer.alloc(32, 1));
  });
});
