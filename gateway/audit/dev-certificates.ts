import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DevCertificatesError } from './errors';

/** The files `gapwatch certs init` writes, by role. */
export interface DevCertificateFiles {
  dir: string;
  caCert: string;
  caKey: string;
  gatewayCert: string;
  gatewayKey: string;
  collectorCert: string;
  collectorKey: string;
  /** A client of the collector's WatchAlerts stream (a console, a SOAR tool). */
  watcherCert: string;
  watcherKey: string;
}

export interface DevCertificateOptions {
  dir: string;
  /** Names and addresses the gateway certificate is valid for (subjectAltName); localhost, 127.0.0.1 and ::1 always. */
  hosts?: readonly string[];
  /** Replace existing files; otherwise existing files are an error. */
  force?: boolean;
  /** Validity of the leaf certificates, in days. */
  days?: number;
}

export function devCertificatePaths(dir: string): DevCertificateFiles {
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    gatewayCert: join(dir, 'gateway.crt'),
    gatewayKey: join(dir, 'gateway.key'),
    collectorCert: join(dir, 'collector.crt'),
    collectorKey: join(dir, 'collector.key'),
    watcherCert: join(dir, 'watcher.crt'),
    watcherKey: join(dir, 'watcher.key'),
  };
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/**
 * A development CA, a gateway (server) certificate and a collector (client) certificate for the
 * Audit stream's mutual TLS, made with the openssl command line (EC P-256, SHA-256). The collector
 * certificate serves too (the collector's WatchAlerts stream, for the same names as the gateway's), and a
 * watcher certificate is the client of that stream. The CA key stays
 * next to them: fine on a laptop, never in production (README "Audit stream certificates").
 */
export function createDevCertificates(options: DevCertificateOptions): DevCertificateFiles {
  const files = devCertificatePaths(options.dir);
  const all = [files.caCert, files.caKey, files.gatewayCert, files.gatewayKey, files.collectorCert, files.collectorKey, files.watcherCert, files.watcherKey];
  const present = all.filter((file) => existsSync(file));
  if (present.length > 0 && !options.force) {
    throw new DevCertificatesError(`${present.join(', ')} already exist${present.length === 1 ? 's' : ''}; pass --force to replace them (collectors and gateways using the old ones must get the new ones)`);
  }
  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  const days = String(options.days ?? 825);
  const hosts = [...new Set(['localhost', '127.0.0.1', '::1', ...(options.hosts ?? [])])];
  const san = hosts.map((host) => (IPV4.test(host) || host.includes(':') ? `IP:${host}` : `DNS:${host}`)).join(',');
  const scratch = join(options.dir, `.certs-${randomBytes(4).toString('hex')}`);
  mkdirSync(scratch, { mode: 0o700 });
  try {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-sha256', '-days', '3650',
      '-keyout', files.caKey, '-out', files.caCert, '-subj', '/CN=gapwatch development CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    leaf(files, scratch, 'gateway', '/CN=gapwatch gateway', `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`, days);
    leaf(files, scratch, 'collector', '/CN=gapwatch collector', `subjectAltName=${san}\nextendedKeyUsage=clientAuth,serverAuth\n`, days);
    leaf(files, scratch, 'watcher', '/CN=gapwatch alert watcher', 'extendedKeyUsage=clientAuth\n', days);
    for (const key of [files.caKey, files.gatewayKey, files.collectorKey, files.watcherKey]) chmodSync(key, 0o600);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return files;
}

function leaf(files: DevCertificateFiles, scratch: string, role: 'gateway' | 'collector' | 'watcher', subject: string, extensions: string, days: string): void {
  const key = files[`${role}Key`];
  const cert = files[`${role}Cert`];
  const csr = join(scratch, `${role}.csr`);
  const ext = join(scratch, `${role}.ext`);
  writeFileSync(ext, `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n${extensions}`);
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', subject]);
  openssl(['x509', '-req', '-sha256', '-in', csr, '-CA', files.caCert, '-CAkey', files.caKey, '-set_serial', `0x${randomBytes(16).toString('hex')}`,
    '-days', days, '-extfile', ext, '-out', cert]);
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? '';
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new DevCertificatesError('the openssl command is not installed (Debian: apt-get install openssl)', err);
    throw new DevCertificatesError(`openssl ${args[0]} failed: ${stderr.split('\n').slice(-3).join(' ')}`, err);
  }
}
