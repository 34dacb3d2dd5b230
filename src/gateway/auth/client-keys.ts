import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { RoleMeshError } from "../../core/errors.js";
import { readJsonFile, writeJsonFile } from "../../core/json-file.js";

/** A client key as the gateway holds it: the secret only as its SHA-256. */
export interface ClientKey {
  name: string;
  /** Model ids or roles the key may use; `*` for all. */
  models: string[];
  /** 0 = unlimited. */
  requests_per_minute: number;
  /** `config` keys come from `api_keys`; `store` keys were added through the admin API. */
  source: "config" | "store";
  created_at: string;
}

interface StoredKey extends ClientKey {
  sha256: string;
}

export interface NewKey {
  name: string;
  models?: string[];
  requests_per_minute?: number;
}

const hash = (secret: string) => createHash("sha256").update(secret).digest("hex");

/**
 * Client keys (SPEC §7.3): static ones from the config and ones added through the admin API,
 * kept hashed in `state_dir/keys.json` (replaced atomically). A presented key is hashed and
 * looked up, so the lookup reveals nothing about the secrets held.
 */
export class ClientKeys {
  readonly #byHash = new Map<string, StoredKey>();
  readonly #file: string;

  private constructor(file: string) {
    this.#file = file;
  }

  static async open(
    stateDir: string,
    staticKeys: readonly (NewKey & { key: string })[],
  ): Promise<ClientKeys> {
    const keys = new ClientKeys(join(stateDir, "keys.json"));
    for (const key of staticKeys) {
      keys.#add({ ...withDefaults(key), source: "config", created_at: "", sha256: hash(key.key) });
    }
    for (const key of await readJsonFile<StoredKey[]>(keys.#file, [])) {
      keys.#add({ ...key, source: "store" });
    }
    return keys;
  }

  /** True when at least one key exists, i.e. the OpenAI API is no longer open. */
  get enabled(): boolean {
    return this.#byHash.size > 0;
  }

  authenticate(secret: string | undefined): ClientKey | undefined {
    if (secret === undefined) return undefined;
    const found = this.#byHash.get(hash(secret));
    return found ? publicView(found) : undefined;
  }

  list(): ClientKey[] {
    return [...this.#byHash.values()].map(publicView);
  }

  /** Creates a key; the secret is returned once and never stored in clear. */
  async create(request: NewKey): Promise<{ key: string; info: ClientKey }> {
    if (this.list().some((key) => key.name === request.name)) {
      throw new RoleMeshError("invalid_request", `a key named "${request.name}" exists already`, {
        param: "name",
      });
    }
    const secret = `rmk-${randomBytes(24).toString("base64url")}`;
    const stored: StoredKey = {
      ...withDefaults(request),
      source: "store",
      created_at: new Date().toISOString(),
      sha256: hash(secret),
    };
    this.#add(stored);
    await this.#save();
    return { key: secret, info: publicView(stored) };
  }

  async delete(name: string): Promise<boolean> {
    const found = [...this.#byHash.entries()].find(([, key]) => key.name === name);
    if (!found) return false;
    if (found[1].source === "config") {
      throw new RoleMeshError(
        "invalid_request",
        `key "${name}" comes from the config file; remove it there`,
      );
    }
    this.#byHash.delete(found[0]);
    await this.#save();
    return true;
  }

  #add(key: StoredKey): void {
    this.#byHash.set(key.sha256, key);
  }

  async #save(): Promise<void> {
    const stored = [...this.#byHash.values()].filter((key) => key.source === "store");
    await writeJsonFile(this.#file, stored);
  }
}

/** Whether `key` may use the model id or role the client named. */
export function keyAllows(key: ClientKey, name: string): boolean {
  return key.models.includes("*") || key.models.includes(name);
}

function withDefaults(key: NewKey): Pick<ClientKey, "name" | "models" | "requests_per_minute"> {
  return {
    name: key.name,
    models: key.models ?? ["*"],
    requests_per_minute: key.requests_per_minute ?? 0,
  };
}

function publicView(key: StoredKey): ClientKey {
  const { sha256: _secret, ...visible } = key;
  return visible;
}
