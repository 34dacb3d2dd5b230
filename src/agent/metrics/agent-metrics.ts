import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { ServerState } from "../../protocol/inventory.js";
import type { Device } from "../scheduler/device.js";
import type { Scheduler } from "../scheduler/scheduler.js";
import { REQUEST_DURATION_BUCKETS } from "../../core/metrics.js";
import { MIB } from "../../core/units.js";

const SERVER_STATES: ServerState[] = ["stopped", "starting", "ready", "stopping", "failed"];

/**
 * The agent's Prometheus metrics (`GET /metrics`). Device and queue gauges are read from the
 * scheduler when scraped, so they always match the inventory; request metrics are counted as
 * requests end.
 */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly #requests: Counter<"endpoint" | "model" | "status">;
  readonly #duration: Histogram<"endpoint" | "model">;
  readonly #firstToken: Histogram<"endpoint" | "model">;
  readonly #restarts: Counter<"device">;

  constructor(scheduler: Scheduler) {
    const registers = [this.registry];
    const perDevice = (name: string, help: string, read: (device: Device) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ["device"] as const,
        registers,
        collect() {
          this.reset();
          for (const device of scheduler.devices) {
            const value = read(device);
            if (value !== undefined) this.set({ device: device.ref.id }, value);
          }
        },
      });
    const mib = (value: number | undefined) => (value === undefined ? undefined : value * MIB);
    perDevice("rolemesh_device_vram_total_bytes", "Device memory (system RAM for the CPU).", (d) =>
      mib(d.metrics?.vram_total_mb),
    );
    perDevice("rolemesh_device_vram_used_bytes", "Device memory in use, by anyone.", (d) =>
      mib(d.metrics?.vram_used_mb),
    );
    perDevice(
      "rolemesh_device_vram_free_bytes",
      "Device memory free, as the vendor tool reports it.",
      (d) => mib(d.metrics?.vram_free_mb),
    );
    perDevice(
      "rolemesh_device_vram_reserved_bytes",
      "Device memory the agent counts as taken by the model its server holds (estimate).",
      (d) => scheduler.reservedBytes(d),
    );
    perDevice("rolemesh_device_utilization_ratio", "Device utilization, 0 to 1.", (d) =>
      d.metrics?.utilization_pct === undefined ? undefined : d.metrics.utilization_pct / 100,
    );
    perDevice(
      "rolemesh_device_temperature_celsius",
      "Device temperature.",
      (d) => d.metrics?.temperature_c,
    );
    perDevice("rolemesh_device_power_watts", "Device power draw.", (d) => d.metrics?.power_w);
    perDevice(
      "rolemesh_queue_in_flight_requests",
      "Requests running on the device.",
      (d) => d.queueInfo().in_flight,
    );
    perDevice(
      "rolemesh_queue_pending_requests",
      "Requests waiting for the device.",
      (d) => d.queueInfo().pending,
    );
    perDevice(
      "rolemesh_queue_limit_requests",
      "In flight plus pending the device admits.",
      (d) => d.queueInfo().limit,
    );
    new Gauge({
      name: "rolemesh_server_state",
      help: "1 for the state the device's server is in, 0 for the others.",
      labelNames: ["device", "state"] as const,
      registers,
      collect() {
        for (const device of scheduler.devices) {
          for (const state of SERVER_STATES) {
            this.set({ device: device.ref.id, state }, device.serverState === state ? 1 : 0);
          }
        }
      },
    });
    this.#restarts = new Counter({
      name: "rolemesh_server_restarts_total",
      help: "Servers started again after a crash.",
      labelNames: ["device"],
      registers,
    });
    for (const device of scheduler.devices) {
      this.#restarts.inc({ device: device.ref.id }, 0);
      let previous = device.serverState;
      device.onServerState((state) => {
        if (previous === "failed" && state === "starting")
          this.#restarts.inc({ device: device.ref.id });
        previous = state;
      });
    }
    this.#requests = new Counter({
      name: "rolemesh_requests_total",
      help: "OpenAI requests answered, by status (`aborted` when the client left first).",
      labelNames: ["endpoint", "model", "status"],
      registers,
    });
    this.#duration = new Histogram({
      name: "rolemesh_request_duration_seconds",
      help: "Time from receiving a request to its last byte.",
      labelNames: ["endpoint", "model"],
      buckets: REQUEST_DURATION_BUCKETS,
      registers,
    });
    this.#firstToken = new Histogram({
      name: "rolemesh_time_to_first_token_seconds",
      help: "Time from receiving a request to the first byte of the server's answer.",
      labelNames: ["endpoint", "model"],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
  }

  /** Records one finished request; `firstByteS` is absent when no answer byte was relayed. */
  observeRequest(
    endpoint: string,
    model: string,
    status: string,
    durationS: number,
    firstByteS?: number,
  ): void {
    this.#requests.inc({ endpoint, model, status });
    this.#duration.observe({ endpoint, model }, durationS);
    if (firstByteS !== undefined) this.#firstToken.observe({ endpoint, model }, firstByteS);
  }

  /** The Prometheus text exposition, and its content type. */
  async scrape(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}
