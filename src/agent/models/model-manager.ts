import { rm, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import type { Logger } from "../../core/logger.js";
import { z } from "zod";
import { RoleMeshError } from "../../core/errors.js";
import { readJsonFile, writeJsonFile } from "../../core/json-file.js";
import { parseRequest } from "../../core/validation.js";
import type { OperationStarted } from "../../protocol/operations.js";
import type { ModelEntry } from "../config/agent-config.js";
import { ModelEntrySchema } from "../config/agent-config.js";
import type { Operation, Operations } from "../operations/operations.js";
import type { ModelCatalog } from "./model-catalog.js";
import { downloadModel, installFileName, redact, resolveSource } from "./model-installer.js";

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
  /** The largest model file an install downloads (`max_download_gb`); none when absent. */
  maxDownloadBytes?: number;
  log: Logger;
  /** Stops every server that holds the model (before its file is deleted). */
  unload(modelId: string): Promise<unknown>;
  /** Called when the model list changed, so the gateway hears of it. */
  onChange(): void;
}

/** An install running now, under the file it writes. */
interface RunningInstall {
  model_id: string;
  source: string;
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
  /** By target path: one install writes a file (and its `.part`) at a time. */
  readonly #running = new Map<string, RunningInstall>();

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
   * install of the same model from the same source when one is running, and else starts one. A
   * file is written for one model from one source: any other claim on it is a 409 `conflict`.
   */
  async install(
    raw: unknown,
  ): Promise<OperationStarted | { installed: true; model: InstalledModel }> {
    const args = parseRequest(InstallArgsSchema, raw);
    const url = resolveSource(args.url);
    const fileName = installFileName(url, args.file_name);
    const target = join(this.modelsDir, fileName);
    const source = redact(url);
    const onDisk = await exists(target);
    // Nothing awaits from here on: the checks and the start see one state.
    const running = this.#running.get(target);
    if (running?.model_id !== args.model_id || running.source !== source) {
      const installed = this.#claimed(args.model_id, target, source, onDisk);
      if (installed) return { installed: true, model: installed };
    }
    // Keyed by the file: the same install running joins it.
    return this.#options.operations.start("model.install", `model.install:${target}`, (op) => {
      this.#running.set(target, { model_id: args.model_id, source });
      return this.#download(args, url, fileName, op).finally(() => this.#running.delete(target));
    });
  }

  /**
   * The model when it is installed already from `source` at `target`; throws `conflict` when
   * the id or the file is taken otherwise, so no install replaces what another one wrote.
   */
  #claimed(
    modelId: string,
    target: string,
    source: string,
    onDisk: boolean,
  ): InstalledModel | undefined {
    const fileName = basename(target);
    const running = this.#running.get(target);
    if (running) {
      throw conflict(
        `${fileName} is being installed for model "${running.model_id}" from ${running.source}; choose another file_name`,
        "file_name",
      );
    }
    const busy = this.#runningFor(modelId);
    if (busy) {
      throw conflict(`model "${modelId}" is being installed from ${busy.source}`, "model_id");
    }
    const installed = this.#installed.find((model) => model.model_id === modelId);
    if (installed) {
      if (installed.path === target && installed.source === source) return installed;
      throw conflict(
        `model "${modelId}" is installed from another source (${installed.source} as ${installed.path}); delete it first`,
        "model_id",
      );
    }
    const holder = this.#installed.find((model) => model.path === target);
    if (holder) {
      throw conflict(
        `${fileName} holds model "${holder.model_id}" from ${holder.source}; choose another file_name`,
        "file_name",
      );
    }
    if (this.#options.models.some((entry) => entry.model_id === modelId)) {
      throw conflict(
        `model "${modelId}" is configured in the config file; choose another id`,
        "model_id",
      );
    }
    if (onDisk) {
      throw conflict(
        `${target} exists and was not installed from ${source}; remove it or choose another file_name`,
        "file_name",
      );
    }
    return undefined;
  }

  #runningFor(modelId: string): RunningInstall | undefined {
    return [...this.#running.values()].find((running) => running.model_id === modelId);
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
    if (this.#runningFor(modelId)) {
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
    operation: Operation,
  ): Promise<InstalledModel> {
    this.#options.log.info({ model: args.model_id, source: redact(source) }, "installing model");
    const file = await downloadModel({
      source,
      fileName,
      ...(args.sha256 ? { sha256: args.sha256 } : {}),
      modelsDir: this.modelsDir,
      ...(this.#options.maxDownloadBytes !== undefined
        ? { maxBytes: this.#options.maxDownloadBytes }
        : {}),
      report: operation.report.bind(operation),
      // A cancelled install keeps its `.part`: the next install resumes it.
      signal: operation.signal,
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
      source: redact(source),
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

const conflict = (message: string, param: string) =>
  new RoleMeshError("conflict", message, { param });

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}
