import type { BackendName, DeviceMetrics, DeviceRef } from "../../protocol/inventory.js";

/**
 * One way of finding and measuring devices (SPEC §3). Scheduling only ever talks to this
 * interface, so it never depends on the vendor. Pinning is the same for every backend of a
 * vendor and lives in `pinning.ts`.
 */
export interface DeviceBackend {
  readonly name: BackendName;
  /** Lists the devices; an empty list when the backend's tool is missing or fails. */
  discover(): Promise<DeviceRef[]>;
  /** Measures the given devices; a device that could not be measured is left out. */
  measure(devices: readonly DeviceRef[]): Promise<Map<string, DeviceMetrics>>;
}
