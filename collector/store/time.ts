/**
 * DateTime64 values travel as text "<seconds>.<fraction>" (seconds since the epoch, UTC), which every
 * ClickHouse input format parses exactly; a JSON number would lose nanoseconds to float rounding.
 */
export function dateTime64(nanos: bigint | string | number): string {
  const value = BigInt(nanos);
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const seconds = abs / 1_000_000_000n;
  const fraction = (abs % 1_000_000_000n).toString().padStart(9, '0');
  return `${negative ? '-' : ''}${seconds}.${fraction}`;
}

export function nowNanos(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}
