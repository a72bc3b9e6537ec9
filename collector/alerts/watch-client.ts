import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { loadGapwatchProto } from '../../proto/load';
import type { AlertWatchClient } from '../../proto/generated/gapwatch/v1/AlertWatch';
import { AlertWatchTlsFileError } from '../errors';

export interface AlertWatchTarget {
  /** host:port of the collector's collector.alerts.watch.listen. */
  address: string;
  /** The CA that signed the collector's certificate. */
  caFile: string;
  /** This watcher's certificate and key, signed by the CA the collector trusts. */
  certFile: string;
  keyFile: string;
  /** The name in the collector's certificate, when it differs from the host in `address`. */
  serverName?: string | null;
}

function pem(role: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new AlertWatchTlsFileError(role, file, err);
  }
}

/** A client of a collector's AlertWatch service over mutual TLS. */
export function createAlertWatchClient(target: AlertWatchTarget): AlertWatchClient {
  const credentials = grpc.credentials.createSsl(pem('CA certificate', target.caFile), pem('watcher key', target.keyFile), pem('watcher certificate', target.certFile));
  const options: grpc.ChannelOptions = { 'grpc.keepalive_time_ms': 20_000, 'grpc.keepalive_timeout_ms': 10_000, 'grpc.keepalive_permit_without_calls': 1 };
  if (target.serverName) options['grpc.ssl_target_name_override'] = target.serverName;
  const AlertWatch = loadGapwatchProto().gapwatch.v1.AlertWatch;
  return new AlertWatch(target.address, credentials, options);
}
