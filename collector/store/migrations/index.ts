import type { Migration } from '../migration';
import { initialSchema } from './0001-initial-schema';
import { gatewaySessionDetails } from './0002-gateway-session-details';
import { alertDetails } from './0003-alert-details';
import { journalRecords } from './0004-journal-records';
import { dashboardLookups } from './0005-dashboard-lookups';
import { sessionAborted } from './0006-session-aborted';
import { sessionAttribution } from './0007-session-attribution';

/** Every migration, in version order. A released migration is never edited: add the next one. */
export const MIGRATIONS: readonly Migration[] = [initialSchema, gatewaySessionDetails, alertDetails, journalRecords, dashboardLookups, sessionAborted, sessionAttribution];
