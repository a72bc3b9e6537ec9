import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { requireRoot } from '../support/host';
import {
  agentSession,
  collectorPosition,
  GapwatchProcess,
  assertStoredExactlyOnce,
  journalTruth,
  openCollectorStore,
  settledJournal,
  reliabilitySetup,
  storedGatewayRecords,
  waitUntil,
  type ReliabilitySetup,
} from '../support/gapwatch-processes';

/** A TCP relay between collector and gateway whose connections the test cuts. */
class CuttableRelay {
  private readonly sockets = new Set<Socket>();
  readonly server: Server;
  accepted = 0;

  constructor(targetPort: number) {
    this.server = createServer((inbound) => {
      this.accepted++;
      const outbound = connect(targetPort, '127.0.0.1');
      for (const socket of [inbound, outbound]) {
        this.sockets.add(socket);
        socket.on('error', () => undefined);
        socket.on('close', () => this.sockets.delete(socket));
      }
      inbound.pipe(outbound).pipe(inbound);
      inbound.on('close', () => outbound.destroy());
      outbound.on('close', () => inbound.destroy());
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  /** Destroys every open connection, as a network cut seen from both ends. */
  cut(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  close(): void {
    this.cut();
    this.server.close();
  }
}

describe('reliability: the Audit stream cut and the gateway restarted while the collector streams', function () {
  this.timeout(150_000);
  let setup: ReliabilitySetup;
  let relay: CuttableRelay | null = null;

  before(async () => {
    requireRoot();
    setup = await reliabilitySetup();
  });
  after(async () => {
    relay?.close();
    await setup?.stop();
  });

  it('resumes after each cut and after the restart, storing every gateway record exactly once', async () => {
    // "Nothing lost" here: every session and session event the gateway journaled (before, between and
    // after three cuts of the collector's connection and a gateway restart) is in the collector's store
    // exactly once (the id sets equal the journal's; rows after FINAL equal the distinct ids).
    relay = new CuttableRelay(Number(setup.auditAddress.split(':')[1]));
    setup.subscribeVia(await relay.listen());
    let gateway = await GapwatchProcess.start('gateway', setup.gatewayConfig);
    const collector = await GapwatchProcess.start('collector', setup.collectorConfig);
    let serving = true;
    let completed = 0;
    const load = (async () => {
      for (let i = 0; serving; i++) {
        // Sessions attempted while the gateway restarts fail; the journal says what happened.
        await agentSession(setup, 4, `grpc-${i}`).then(
          () => completed++,
          () => new Promise((resolve) => setTimeout(resolve, 100)),
        );
      }
    })();
    try {
      for (let cut = 0; cut < 3; cut++) {
        const accepted = relay.accepted;
        const before = completed;
        await waitUntil(() => completed >= before + 2 && collectorPosition(setup.collectorDataDir) > 0n, 'traffic streaming to the collector');
        relay.cut();
        await waitUntil(() => relay!.accepted > accepted, 'the collector to reconnect');
      }
      const accepted = relay.accepted;
      assert.equal(await gateway.stop(), 0, gateway.output());
      gateway = await GapwatchProcess.start('gateway', setup.gatewayConfig);
      await waitUntil(() => relay!.accepted > accepted, 'the collector to reconnect to the restarted gateway');
      const before = completed;
      await waitUntil(() => completed >= before + 3, 'traffic after the restart');
      serving = false;
      await load;
      const truth = journalTruth((await settledJournal(setup)).filter((r) => r.session || r.event));
      await waitUntil(() => collectorPosition(setup.collectorDataDir) >= truth.lastSeq, `the collector to store the journal up to seq ${truth.lastSeq}`);
      assert.equal(await collector.stop(), 0, collector.output());
      assert.equal(await gateway.stop(), 0, gateway.output());

      const store = await openCollectorStore(setup.collectorDataDir);
      try {
        const stored = await storedGatewayRecords(store);
        assert.ok(truth.sessions.size >= completed);
        assertStoredExactlyOnce(stored, truth);
      } finally {
        await store.close();
      }
    } catch (err) {
      (err as Error).message += `\n${gateway.output()}\n${collector.output()}`;
      throw err;
    } finally {
      serving = false;
      await load;
    }
  });
});
