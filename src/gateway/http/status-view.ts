import { basename } from "node:path";
import type { DeviceInventory, ModelInventory } from "../../protocol/inventory.js";
import type { PeerStatus, RegistryEvent, StatusResponse } from "../../protocol/registry.js";

/**
 * Who reads the fleet's status: the admin (or anyone, on an open loopback gateway) sees all of
 * it; a client key sees what it needs to use the fleet, without what only operators should
 * read — servers' output (which carries paths, arguments and prompts in debug logs) and where
 * model files sit on the hosts.
 */
export type StatusViewer = "admin" | "client";

/** The status as `viewer` may read it. */
export function statusFor(status: StatusResponse, viewer: StatusViewer): StatusResponse {
  return viewer === "admin" ? status : { ...status, peers: status.peers.map(peerForClients) };
}

/** A registry event as `viewer` may read it. */
export function eventFor(event: RegistryEvent, viewer: StatusViewer): RegistryEvent {
  if (viewer === "admin") return event;
  switch (event.type) {
    case "status":
      return { ...event, status: statusFor(event.status, viewer) };
    case "node_registered":
    case "node_updated":
      return { ...event, node: peerForClients(event.node) };
    default:
      return event;
  }
}

function peerForClients(peer: PeerStatus): PeerStatus {
  return {
    ...peer,
    devices: peer.devices.map(deviceForClients),
    models: peer.models.map(modelForClients),
  };
}

function deviceForClients(device: DeviceInventory): DeviceInventory {
  const error = device.last_error;
  return {
    ...device,
    log_tail: [],
    // The message ends with the server's last line of output.
    last_error: error && {
      ...error,
      message: "the server failed (the admin API says why)",
      stderr_tail: [],
    },
  };
}

function modelForClients(model: ModelInventory): ModelInventory {
  return { ...model, path: basename(model.path) };
}
