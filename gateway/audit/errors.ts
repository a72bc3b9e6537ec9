import { GapwatchError } from '../../platform/errors';

/** The Audit service's error catalogue (`GW_ERR_AUDIT_*`). */
export class AuditTlsFileError extends GapwatchError {
  readonly file: string;

  constructor(role: string, file: string, cause: unknown) {
    super(
      'GW_ERR_AUDIT_TLS_FILE',
      `cannot read the audit service's ${role} ${file}: ${(cause as Error).message ?? String(cause)}; ` +
        'make the files with `gapwatch certs init` (development) or your CA, and set gateway.audit.tls',
      { cause },
    );
    this.file = file;
  }
}

export class AuditListenError extends GapwatchError {
  readonly address: string;

  constructor(address: string, cause: unknown) {
    super(
      'GW_ERR_AUDIT_LISTEN',
      `the audit service cannot listen on ${address}: ${(cause as Error).message ?? String(cause)}; choose another gateway.audit.listen or stop what holds it`,
      { cause },
    );
    this.address = address;
  }
}

export class DevCertificatesError extends GapwatchError {
  constructor(detail: string, cause?: unknown) {
    super('GW_ERR_DEV_CERTS', `cannot create the development certificates: ${detail}`, { cause });
  }
}
