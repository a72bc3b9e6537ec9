import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { createDevCertificates } from '../../gateway/audit/dev-certificates';
import { defineCommand } from '../cli';

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * `gapwatch certs init`: a development CA plus gateway and collector certificates for the Audit
 * stream's mutual TLS, and the configuration that uses them. Production certificates: README.
 */
export function registerCerts(program: Command): void {
  const certs = program.command('certs').description('certificates for the gateway → collector audit stream (mutual TLS)');
  defineCommand<{ dir?: string; host?: string[]; force?: boolean }>(
    certs,
    'init',
    'create a development CA, gateway, collector and alert watcher certificates (openssl); prints the config keys',
    (command) =>
      command
        .option('--dir <dir>', 'where to write them (default: <dataDir>/certs)')
        .option('--host <name>', 'a name or address the gateway is reached by (repeatable; localhost, 127.0.0.1 and ::1 always)', collect)
        .option('--force', 'replace existing files'),
    async (context, options) => {
      const dir = resolve(options.dir ?? join(context.config.dataDir, 'certs'));
      const files = createDevCertificates({ dir, hosts: options.host ?? [], force: options.force === true });
      process.stdout.write(
        `development certificates in ${files.dir} (the CA key is there too: for development only)\n\n` +
          `gateway:\n  audit:\n    listen: { host: 127.0.0.1, port: 7443 }\n    tls:\n` +
          `      caFile: ${files.caCert}\n      certFile: ${files.gatewayCert}\n      keyFile: ${files.gatewayKey}\n` +
          `collector:\n  gateways:\n    - address: 127.0.0.1:7443\n` +
          `      caFile: ${files.caCert}\n      certFile: ${files.collectorCert}\n      keyFile: ${files.collectorKey}\n` +
          `  alerts:\n    watch:\n      listen: { host: 127.0.0.1, port: 7444 }\n      tls:\n` +
          `        caFile: ${files.caCert}\n        certFile: ${files.collectorCert}\n        keyFile: ${files.collectorKey}\n` +
          `\nalert watchers (gRPC WatchAlerts on the collector) use ${files.watcherCert} and ${files.watcherKey}\n`,
      );
      return 0;
    },
  );
}
