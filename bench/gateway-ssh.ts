import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from '../test/support/host';
import { startSshGateway } from '../test/support/ssh-gateway';
import { round, summarize } from './stats';

/**
 * scp of one large random file, upload and download, with the real OpenSSH client: straight to a
 * real sshd (the resource's own key) and through the SSH gateway (agent key, pinned upstream,
 * every SFTP operation journaled), alternating the order each round so drift on this noisy machine
 * hits both paths alike. Reports median MB/s per path and direction, and `ratio_vs_direct`: the
 * lower of the two gateway/direct ratios.
 *
 *   npm run bench -- gateway-ssh [rounds=3] [mebibytes=256]
 */
export async function run(args: string[]): Promise<{ name: string } & Record<string, unknown>> {
  const rounds = Number(args[0] ?? 3);
  const mebibytes = Number(args[1] ?? 256);
  const say = (line: string): void => void process.stderr.write(`gateway-ssh: ${line}\n`);
  const scratch = mkdtempSync(join(tmpdir(), 'gapwatch-bench-ssh-'));
  const gw = await startSshGateway();
  try {
    const source = join(scratch, 'payload.bin');
    const fd = openSync(source, 'w');
    const chunk = Buffer.alloc(1 << 20);
    for (let i = 0; i < mebibytes; i++) writeSync(fd, randomFillSync(chunk));
    closeSync(fd);
    const bytes = statSync(source).size;
    say(`${mebibytes} MiB file, ${rounds} rounds`);

    const paths = {
      direct: { options: gw.directOptions, target: gw.directTarget },
      gateway: { options: gw.gatewayOptions, target: gw.gatewayTarget },
    } as const;
    type Path = keyof typeof paths;
    const samples: Record<Path, { upload: number[]; download: number[] }> = { direct: { upload: [], download: [] }, gateway: { upload: [], download: [] } };
    const transfer = async (path: Path, direction: 'upload' | 'download'): Promise<number> => {
      const { options, target } = paths[path];
      const remote = join(scratch, `remote-${path}.bin`);
      const local = join(scratch, `local-${path}.bin`);
      const args = direction === 'upload' ? [...options, source, `${target}:${remote}`] : [...options, `${target}:${remote}`, local];
      const started = process.hrtime.bigint();
      const result = await runCommand('scp', args);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (result.code !== 0) throw new Error(`scp ${direction} via ${path} failed: ${result.stderr}`);
      const moved = statSync(direction === 'upload' ? remote : local).size;
      if (moved !== bytes) throw new Error(`scp ${direction} via ${path} moved ${moved} of ${bytes} bytes`);
      return bytes / 1e6 / seconds;
    };
    for (let round = 0; round < rounds; round++) {
      const order: Path[] = round % 2 === 0 ? ['direct', 'gateway'] : ['gateway', 'direct'];
      for (const path of order) {
        const up = await transfer(path, 'upload');
        const down = await transfer(path, 'download');
        samples[path].upload.push(up);
        samples[path].download.push(down);
        say(`round ${round + 1} ${path}: upload ${up.toFixed(1)} MB/s, download ${down.toFixed(1)} MB/s`);
      }
    }
    const upload = { direct: summarize(samples.direct.upload), gateway: summarize(samples.gateway.upload) };
    const download = { direct: summarize(samples.direct.download), gateway: summarize(samples.gateway.download) };
    const uploadRatio = upload.gateway.median / upload.direct.median;
    const downloadRatio = download.gateway.median / download.direct.median;
    return {
      name: 'gateway-ssh',
      file_mib: mebibytes,
      rounds,
      upload_mb_s: { direct: upload.direct.median, gateway: upload.gateway.median },
      download_mb_s: { direct: download.direct.median, gateway: download.gateway.median },
      direct_mb_s: round((upload.direct.median + download.direct.median) / 2),
      gateway_mb_s: round((upload.gateway.median + download.gateway.median) / 2),
      upload_ratio: round(uploadRatio),
      download_ratio: round(downloadRatio),
      ratio_vs_direct: round(Math.min(uploadRatio, downloadRatio)),
    };
  } finally {
    await gw.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}
