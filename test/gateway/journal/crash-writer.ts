import { Journal } from '../../../gateway/journal/journal';
import { statementEvent } from './journal-files';

/**
 * Child process for the crash test: appends large records from 16 concurrent loops and prints
 * each acknowledged (durable) seq, until the test kills it with SIGKILL mid-append.
 */
async function main(dir: string): Promise<void> {
  const journal = await Journal.open({ dir, gatewayId: 'gw-test', segmentBytes: 1 << 20, checkpoint: { everyRecords: 50 } });
  const big = 'x'.repeat(64 * 1024);
  let n = 0;
  const loop = async (): Promise<never> => {
    for (;;) {
      const { seq } = await journal.append(statementEvent(n++, big));
      process.stdout.write(`${seq}\n`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, loop));
}

main(process.argv[2]!).catch((err: unknown) => {
  process.stderr.write(`crash-writer: ${String(err)}\n`);
  process.exit(1);
});
