import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { loadGapwatchProto } from '../../proto/load';
import type { AuditClient } from '../../proto/generated/gapwatch/v1/Audit';
import type { GatewayFeedEntry } from './config-schema';
import { GatewayFeedTlsFileError } from './errors';

function pem(role: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new GatewayFeedTlsFileError(role, file, err);
  }
}

/**
 * A client of one gateway's Audit service over mutual TLS: the gateway must present a certificate of
 * `caFile` for its address (or `serverName`), and this collector presents `certFile`/`keyFile`.
 * Keepalive pings find a connection that died without a FIN, so a cut link leads to a reconnect.
 */
export function createAuditClient(entry: GatewayFeedEntry): AuditClient {
  const credentials = grpc.credentials.createSsl(
    pem('CA certificate (caFile)', entry.caFile),
    pem('client key (keyFile)', entry.keyFile),
    pem('client certificate (certFile)', entry.certFile),
  );
  const options: grpc.ChannelOptions = {
    'grpc.keepalive_time_ms': 20_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
  };
  if (entry.serverName !== null) options['grpc.ssl_target_name_override'] = entry.serverName;
  const Audit = loadGapwatchProto().gapwatch.v1.Audit;
  return new Audit(entry.address, credentials, options);
}
