import type { JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import type { ResourcesResponse__Output } from '../../proto/generated/gapwatch/v1/ResourcesResponse';

/**
 * What correlation needs from the gateways, delivered by the collector's subscription to each
 * gateway's gRPC Audit service (collector/gateway-feed/). Correlation never talks gRPC itself, so it
 * can be driven by a real gateway in tests and in `gapwatch up` alike.
 */
export interface GatewayFeed {
  /** Every journal record of every subscribed gateway, in seq order per gateway, each exactly once. */
  onRecord(listener: (record: JournalRecord__Output) => void): void;
  /** The gateway's protected resources and its own listener endpoints, at start and whenever they change. */
  onResources(listener: (resources: ResourcesResponse__Output) => void): void;
}
