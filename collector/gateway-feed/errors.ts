import { GapwatchError } from '../../platform/errors';

/** The gateway feed's error catalogue (`COLLECTOR_ERR_GATEWAY_FEED_*`). */
export class GatewayPositionDamagedError extends GapwatchError {
  readonly file: string;

  constructor(file: string, detail: string, cause?: unknown) {
    super(
      'COLLECTOR_ERR_GATEWAY_FEED_POSITION',
      `the saved audit stream position ${file} is unreadable (${detail}); delete it to resubscribe from the gateway's first record ` +
        '(records already stored collapse with their copies, since row ids are deterministic)',
      { cause },
    );
    this.file = file;
  }
}

/** The gateway at an address is not the one the saved position belongs to. */
export class GatewayIdentityChangedError extends GapwatchError {
  readonly address: string;

  constructor(address: string, saved: string, now: string) {
    super(
      'COLLECTOR_ERR_GATEWAY_FEED_GATEWAY_CHANGED',
      `the gateway at ${address} is now "${now}" but the saved position belongs to "${saved}"; resuming would skip or misplace records. ` +
        'If the gateway was replaced on purpose, delete the position file for this address in <dataDir>/gateway-feed/',
    );
    this.address = address;
  }
}

export class GatewayFeedTlsFileError extends GapwatchError {
  readonly file: string;

  constructor(role: string, file: string, cause: unknown) {
    super(
      'COLLECTOR_ERR_GATEWAY_FEED_TLS_FILE',
      `cannot read the ${role} ${file} for the gateway audit stream: ${(cause as Error).message ?? String(cause)}; set collector.gateways[].caFile/certFile/keyFile (see \`gapwatch certs init\`)`,
      { cause },
    );
    this.file = file;
  }
}
