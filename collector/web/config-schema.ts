import { z } from 'zod';

/**
 * `collector.web`: the dashboard UI and its read-only API, served by the process that owns the store.
 * Loopback by default: anyone who can reach the port still needs the access token, but a UI meant for
 * the person at the host has no reason to listen on every interface.
 */
export const webConfigSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    listen: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        /** 0 picks a free port (printed by `gapwatch up` and written to <dataDir>/web/address.json). */
        port: z.number().int().min(0).max(65535).default(7480),
      })
      .prefault({}),
    /** How long a browser login lasts. */
    sessionHours: z.number().min(0.1).max(24 * 30).default(12),
    /** Rows one API page may ask for; the UI pages ask for far fewer. */
    maxPageRows: z.number().int().min(10).max(1_000_000).default(10_000),
    /** A query running longer than this is cancelled by the store (ClickHouse max_execution_time). */
    queryTimeoutSeconds: z.number().int().min(1).max(3600).default(30),
  })
  .prefault({});

export type WebConfig = z.infer<typeof webConfigSchema>;
