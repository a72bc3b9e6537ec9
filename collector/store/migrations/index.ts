import type { Migration } from '../migration';
import { initialSchema } from './0001-initial-schema';

/** Every migration, in version order. A released migration is never edited: add the next one. */
export const MIGRATIONS: readonly Migration[] = [initialSchema];
