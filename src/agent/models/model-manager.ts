import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../../core/logger.js";
import { z } from "zod";
import { RoleMeshError } from "../../core/errors.js";
import { readJsonFile, writeJsonFile } from "../../core/json-file.js";
import { parseRequest } from "../../core/validation.js";
import type { OperationStarted } from "../../protocol/operations.js";
import type { ModelEntry } from "../config/agent-config.js";
import { ModelEntrySchema } from "../config/agent-config.js";
import type { Operations } from "../operations/operations.js";
import type { ModelCatalog } from "./model-catalog.js";
import { downloadModel, installFileName, resolveSource } from "./model-installer.js";

/** `POST /v1/node/models/install` (SPEC §7.1). */
export const InstallArgsSchema = z.strictObject({
  url: z.string().min(1),
  model_id: ModelEntrySchema.shape.model_id,
  roles: z.array(z.string().min(1)).default([]),
  sha256: z.string().optional(),
  /** File name under the models folder; the URL's last segment by default. */
  file_name: z.string().optional(),
});
export type InstallArgs = z.input<typeof InstallArgsSchema>;

/** A model this agent downloaded, as kept in `state_dir/models/installed.json`. */
interface InstalledModel {
  model_id: string;
  path: string;
  roles: string[];
  sha256: string;
  size_bytes: number;
  /** The source without its query string. */
  source: string;
  installed_at: string;
}

export interface ModelManagerOptions {
  stateDir: string;
  /** The agent's model list: installed models are added to it and removed from it. */
  models: ModelEntry[];
  catalog: ModelCatalog;
  operations: Operations;
  log: Logger;
  /** Stops every server that holds the model (before its file is deleted). */
  unload(modelId: string): Promise<unknown>;
  /** Called when the model list changed, so the gateway hears of it. */
  onChange(): void;
}

/**
 * Models installed through the API (SPEC §10 `model.install`, `model.delete`): downloaded into
 * `state_dir/models`, registered so they can be loaded at once, and remembered across restarts.
 * Models from the config file are the operator's and are never deleted here.
 */
export class ModelManager {
  readonly modelsDir: string;
  readonly #options: ModelManagerOptions;
  readonly #file: string;
  #installed: InstalledModel[] = [];

  private constructor(options: ModelManagerOptions) {
    this.#options = options;
    this.modelsDir = join(options.stateDir, "models");
    this.#file = join(this.modelsDir, "installed.json");
  }

  /** Reads the installed models and adds them to the model list (the config wins on an id). */
  static async open(options: ModelManagerOptions): Promise<ModelManager> {
    const manager = new ModelManager(options);
    for (const model of await readJsonFile<InstalledModel[]>(manager.#file, [])) {
      if (options.models.some((entry) => entry.model_id === model.model_id)) {
        options.log.warn(
          { model: model.model_id },
          "an installed model has the id of a configured one; the config wins",
        );
        continue;
      }
      const entry = ModelEntrySchema.safeParse({
        model_id: model.model_id,
        path: model.path,
        roles: model.roles,
      });
      if (!entry.success) {
        options.log.warn({ model: model.model_id, path: model.path }, "installed model is gone");
        continue;
      }
      manager.#installed.push(model);
      options.models.push(entry.data);
    }
    return manager;
  }

  /**
   * Installs a model: answers at once when the same model is installed already, joins the
   * install of the same id when one is running, and else starts one.
   */
  install(raw: unknown): OperationStarted | { installed: true; model: InstalledModel } {
    const args = parseRequest(InstallArgsSchema, raw);
    const source = resolveSource(args.url);
    const fileName = installFileName(source, args.file_name);
    const running = this.#options.operations.runningFor(installKey(args.model_id));
    if (running) return { op_id: running.id, joined: true };
    const installed = this.#installed.find((model) => model.model_id === args.model_id);
    if (installed) {
      if (installed.path === join(this.modelsDir, fileName))
        return { installed: true, model: installed };
      throw new RoleMeshError(
        "conflict",
        `model "${args.model_id}" is installed from another file (${installed.path}); delete it first`,
      );
    }
    if (this.#options.models.some((entry) => entry.model_id === args.model_id)) {
      throw new RoleMeshError(
        "conflict",
        `model "${args.model_id}" is configured in the config file; choose another id`,
        { param: "model_id" },
      );
    }
    return this.#options.operations.start("model.install", installKey(args.model_id), (op) =>
      this.#download(args, source, fileName, op.report.bind(op)),
    );
  }

  /** Unloads an installed model and removes its file; answers which files were removed. */
  async delete(modelId: string): Promise<{ model_id: string; deleted_files: string[] }> {
    const installed = this.#installed.find((model) => model.model_id === modelId);
    if (!installed) {
      const configured = this.#options.models.some((entry) => entry.model_id === modelId);
      throw configured
        ? new RoleMeshError(
            "conflict",
            `model "${modelId}" comes from the config file; remove it there (its file is left alone)`,
          )
        : new RoleMeshError("model_not_found", `no installed model "${modelId}" on this node`);
    }
    if (this.#options.operations.runningFor(installKey(modelId))) {
      throw new RoleMeshError("conflict", `model "${modelId}" is being installed`);
    }
    await this.#options.unload(modelId);
    this.#installed = this.#installed.filter((model) => model !== installed);
    const index = this.#options.models.findIndex((entry) => entry.model_id === modelId);
    if (index >= 0) this.#options.models.splice(index, 1);
    this.#options.catalog.remove(modelId);
    await writeJsonFile(this.#file, this.#installed);
    await rm(installed.path, { force: true });
    this.#options.log.info({ model: modelId, path: installed.path }, "model deleted");
    this.#options.onChange();
    return { model_id: modelId, deleted_files: [installed.path] };
  }

  async #download(
    args: z.output<typeof InstallArgsSchema>,
    source: URL,
    fileName: string,
    report: Parameters<typeof downloadModel>[0]["report"],
  ): Promise<InstalledModel> {
    this.#options.log.info(
      { model: args.model_id, source: `${source.origin}${source.pathname}` },
      "installing model",
    );
    const file = await downloadModel({
      source,
      fileName,
      ...(args.sha256 ? { sha256: args.sha256 } : {}),
      modelsDir: this.modelsDir,
      report,
    });
    const entry = ModelEntrySchema.parse({
      model_id: args.model_id,
      path: file.path,
      roles: args.roles,
    });
    const installed: InstalledModel = {
      model_id: args.model_id,
      path: file.path,
      roles: args.roles,
      sha256: file.sha256,
      size_bytes: file.size_bytes,
      source: `${source.origin}${source.pathname}`,
      installed_at: new Date().toISOString(),
    };
    await this.#options.catalog.add(entry, this.#options.log);
    this.#options.models.push(entry);
    this.#installed.push(installed);
    await writeJsonFile(this.#file, this.#installed);
    this.#options.log.info({ model: args.model_id, bytes: file.size_bytes }, "model installed");
    this.#options.onChange();
    return installed;
  }
}

const installKey = (modelId: string) => `model.install:${modelId}`;
