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
