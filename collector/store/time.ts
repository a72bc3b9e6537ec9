/**
 * DateTime64 values travel as text `YYYY-MM-DD hh:mm:ss.nnnnnnnnn` (UTC), which every ClickHouse input
 * format parses exactly: a JSON number would lose nanoseconds to float rounding, and short numeric text
 * ("0.000000000") is ambiguous to ClickHouse's date parser. The fixed width also makes the text sort as
 * the time does.
 */
export function dateTime64(nanos: bigint | string | number): string {
  const value = BigInt(nanos);
  let seconds = value / 1_000_000_000n;
  let fraction = value % 1_000_000_000n;
  if (fraction < 0n) {
    fraction += 1_000_000_000n;
    seconds -= 1n;
  }
  return `${secondsText(seconds)}.${fraction.toString().padStart(9, '0')}`;
}

// Events arrive in bursts within one second; formatting the date part once per second instead of once
// per row is most of the cost of this function on the writer's hot path.
let cachedSeconds = -1n;
let cachedText = '';

function secondsText(seconds: bigint): string {
  if (seconds !== cachedSeconds) {
    const iso = new Date(Number(seconds) * 1000).toISOString();
    cachedText = `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
    cachedSeconds = seconds;
  }
  return cachedText;
}

export const DATETIME64_TEXT = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{9}$/;

export function nowNanos(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}
