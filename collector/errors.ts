import { GapwatchError } from '../platform/errors';

/** The collector's error catalogue. Codes are stable; callers branch on them. */
export class SensorBpfUnavailableError extends GapwatchError {
  constructor(detail: string, cause?: unknown) {
    super(
      'SENSOR_ERR_BPF_UNAVAILABLE',
      `eBPF is not usable here: ${detail}. BPF programs need root or CAP_BPF+CAP_PERFMON (and CAP_NET_ADMIN for cgroup programs); run \`gapwatch doctor\` as root for details`,
      { cause },
    );
  }
}

export class DoctorFailedError extends GapwatchError {
  readonly failed: readonly string[];

  constructor(failed: readonly string[]) {
    super('COLLECTOR_ERR_DOCTOR_FAILED', `the host cannot run the collector: ${failed.join(', ')} failed; see the doctor report above for fixes`);
    this.failed = failed;
  }
}

export class SensorNotRootError extends GapwatchError {
  constructor(detail: string, cause?: unknown) {
    super('SENSOR_ERR_NOT_ROOT', `the host sensor cannot load its BPF programs: ${detail}`, { cause });
  }
}

export class SensorNoBtfError extends GapwatchError {
  constructor(detail: string, cause?: unknown) {
    super('SENSOR_ERR_NO_BTF', `the host sensor cannot run on this kernel: ${detail}; run \`gapwatch doctor\``, { cause });
  }
}

export class SensorAttachError extends GapwatchError {
  constructor(detail: string, cause?: unknown) {
    super('SENSOR_ERR_ATTACH', `the host sensor loaded but could not attach: ${detail}; run \`gapwatch doctor\` as root`, { cause });
  }
}

/** Maps a failure of the addon's Sensor.start() (an Error with a SENSOR_ERR_* code) into the catalogue. */
export function sensorStartError(err: unknown): GapwatchError {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  switch (code) {
    case 'SENSOR_ERR_NOT_ROOT':
      return new SensorNotRootError(message, err);
    case 'SENSOR_ERR_NO_BTF':
      return new SensorNoBtfError(message, err);
    case 'SENSOR_ERR_ATTACH':
      return new SensorAttachError(message, err);
    default:
      return new SensorBpfUnavailableError(message, err);
  }
}

/** The alert watch service (collector.alerts.watch) cannot read one of its TLS files. */
export class AlertWatchTlsFileError extends GapwatchError {
  readonly file: string;

  constructor(role: string, file: string, cause: unknown) {
    super(
      'COLLECTOR_ERR_ALERT_WATCH_TLS_FILE',
      `cannot read the alert watch service's ${role} ${file}: ${(cause as Error).message ?? String(cause)}; ` +
        'make the files with `gapwatch certs init` (development) or your CA, and set collector.alerts.watch.tls',
      { cause },
    );
    this.file = file;
  }
}

export class AlertWatchListenError extends GapwatchError {
  readonly address: string;

  constructor(address: string, cause: unknown) {
    super(
      'COLLECTOR_ERR_ALERT_WATCH_LISTEN',
      `the alert watch service cannot listen on ${address}: ${(cause as Error).message ?? String(cause)}; choose another collector.alerts.watch.listen or stop what holds it`,
      { cause },
    );
    this.address = address;
  }
}

/** A watcher could not watch: refused during the TLS handshake, unreachable, or the stream failed. */
export class AlertWatchRefusedError extends GapwatchError {
  readonly address: string;

  constructor(address: string, detail: string, cause?: unknown) {
    super(
      'COLLECTOR_ERR_ALERT_WATCH_REFUSED',
      `cannot watch alerts at ${address}: ${detail}. The collector serves only watchers with a client certificate of its ` +
        'collector.alerts.watch.tls.caFile (`gapwatch certs init` writes watcher.crt/watcher.key); check --address, --ca, --cert and --key',
      { cause },
    );
    this.address = address;
  }
}
