import { createHash, randomBytes } from "node:crypto";
import { RoleMeshError } from "../../core/errors.js";
import type { SharedDocument } from "../../core/state/shared-document.js";

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

/** A key as stored: its secret only as SHA-256. */
export interface StoredKey extends ClientKey {
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
 * kept hashed in a shared document — `state_dir/keys.json`, or the NATS state bucket that every
 * gateway reads (SPEC §8), so a key created on one gateway works on all. A presented key is
 * hashed and looked up, so the lookup reveals nothing about the secrets held.
 */
export class ClientKeys {
  readonly #configured: StoredKey[];
  readonly #document: SharedDocument<StoredKey[]>;
  #byHash = new Map<string, StoredKey>();

  private constructor(configured: StoredKey[], document: SharedDocument<StoredKey[]>) {
    this.#configured = configured;
    this.#document = document;
    document.on("change", (stored) => this.#index(stored));
  }

  static async open(
    document: SharedDocument<StoredKey[]>,
    staticKeys: readonly (NewKey & { key: string })[],
  ): Promise<ClientKeys> {
    const configured = staticKeys.map((key): StoredKey => ({
      ...withDefaults(key),
      source: "config",
      created_at: "",
      sha256: hash(key.key),
    }));
    const keys = new ClientKeys(configured, document);
    keys.#index(await document.read());
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
    const secret = `rmk-${randomBytes(24).toString("base64url")}`;
    const created: StoredKey = {
      ...withDefaults(request),
      source: "store",
      created_at: new Date().toISOString(),
      sha256: hash(secret),
    };
    this.#index(
      await this.#document.update((stored) => {
        if ([...this.#configured, ...stored].some((key) => key.name === request.name)) {
          throw new RoleMeshError(
            "invalid_request",
            `a key named "${request.name}" exists already`,
            {
              param: "name",
            },
          );
        }
        return [...stored, created];
      }),
    );
    return { key: secret, info: publicView(created) };
  }

  async delete(name: string): Promise<boolean> {
    if (this.#configured.some((key) => key.name === name)) {
      throw new RoleMeshError(
        "invalid_request",
        `key "${name}" comes from the config file; remove it there`,
      );
    }
    let found = false;
    this.#index(
      await this.#document.update((stored) => {
        found = stored.some((key) => key.name === name);
        return stored.filter((key) => key.name !== name);
      }),
    );
    return found;
  }

  /** The keys to look up: the configured ones and the stored ones now. */
  #index(stored: StoredKey[]): void {
    this.#byHash = new Map(
      [...stored.map((key): StoredKey => ({ ...key, source: "store" })), ...this.#configured].map(
        (key) => [key.sha256, key],
      ),
    );
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
