import { Journal } from '../../../gateway/journal/journal';
import { statementEvent } from './journal-files';

/**
 * Child process for the ack-level test: appends a few durable records, then one with ack 'written',
 * reports the seq it was acknowledged at and the durable head at that moment, and SIGKILLs itself
 * in the same turn, before the fdatasync that would make the record durable can be reported.
 */
async function main(dir: string, marker: string): Promise<void> {
  const journal = await Journal.open({ dir, gatewayId: 'gw-test' });
  for (let i = 0; i < 5; i++) await journal.append(statementEvent(i));
  const { seq } = await journal.append(statementEvent(5, marker), { ack: 'written' });
  // Pipes are written synchronously on Linux: the line is out before the signal.
  process.stdout.write(`${JSON.stringify({ acked: seq.toString(), durableAtAck: journal.head().seq.toString() })}\n`);
  process.kill(process.pid, 'SIGKILL');
}

main(process.argv[2]!, process.argv[3]!).catch((err: unknown) => {
  process.stderr.write(`written-then-killed: ${String(err)}\n`);
  process.exit(1);
});
