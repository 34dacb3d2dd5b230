import type { ModelList, ModelListEntry } from "../../protocol/models.js";

/** The OpenAI list of `GET /v1/models`: each entry gets `object`, `created` and `owned_by`. */
export function modelList<Extra extends object>(
  created: Date,
  entries: readonly (Extra & { id: string })[],
): ModelList<Extra & ModelListEntry> {
  const seconds = Math.floor(created.getTime() / 1000);
  return {
    object: "list",
    data: entries.map(({ id, ...extra }) => ({
      id,
      object: "model" as const,
      created: seconds,
      owned_by: "rolemesh" as const,
      ...(extra as Extra),
    })),
  };
}
