/**
 * `GET /v1/models` of agents and gateways: the OpenAI list, each entry with what RoleMesh adds.
 */

/** The OpenAI fields of one model entry. */
export interface ModelListEntry {
  id: string;
  object: "model";
  created: number;
  owned_by: "rolemesh";
}

export interface ModelList<Entry extends ModelListEntry> {
  object: "list";
  data: Entry[];
}

/** An agent's model: its roles and where it is loaded. */
export interface AgentModelEntry extends ModelListEntry {
  roles: string[];
  /** Devices whose server holds it (starting or ready). */
  loaded_on: string[];
  state: "ready" | "loading" | "stopped";
}

/** A model id or role live in the fleet, as a gateway lists it. */
export interface FleetModelEntry extends ModelListEntry {
  kind: "model" | "role";
  node_count: number;
  /** The nodes that serve it. */
  nodes: string[];
}
