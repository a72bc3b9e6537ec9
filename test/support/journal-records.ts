import type { Journal } from '../../gateway/journal/journal';
import type { JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';

/** Every record an open journal holds, from its first seq, in order (what the gateway harnesses' `records()` return). */
export async function allRecords(journal: Journal): Promise<JournalRecord__Output[]> {
  const out: JournalRecord__Output[] = [];
  for await (const record of journal.read(1n)) out.push(record);
  return out;
}
