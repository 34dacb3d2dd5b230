import { existsSync } from "node:fs";
import { findExecutable } from "../../../core/find-executable.js";
import type { BuildBackend } from "./engine-cache.js";

/** A program the build needs, and the packages that provide it on common systems. */
export interface BuildTool {
  /** What it is, for messages: "cmake", "a C++ compiler". */
  name: string;
  /** Executables that satisfy it; the first one found is used. */
  commands: string[];
  /** Package names by system; a system left out has no package for it. */
  packages: { debian?: string; fedora?: string; homebrew?: string };
  /** How to get it where no package does, e.g. Apple's command line tools. */
  hint?: string;
}

const GIT: BuildTool = {
  name: "git",
  commands: ["git"],
  packages: { debian: "git", fedora: "git", homebrew: "git" },
};
const CMAKE: BuildTool = {
  name: "cmake",
  commands: ["cmake"],
  packages: { debian: "cmake", fedora: "cmake", homebrew: "cmake" },
};
const COMPILER: BuildTool = {
  name: "a C++ compiler",
  commands: ["c++", "g++", "clang++"],
  packages: { debian: "g++", fedora: "gcc-c++" },
  hint: "macOS: xcode-select --install",
};

/** Where CUDA installs nvcc when it is not on PATH; cmake looks there too. */
const CUDA_HOME_NVCC = "/usr/local/cuda/bin/nvcc";

const BACKEND_TOOLS: Record<BuildBackend, BuildTool[]> = {
  cpu: [],
  cuda: [
    {
      name: "the CUDA compiler nvcc",
      commands: ["nvcc", CUDA_HOME_NVCC],
      packages: { debian: "nvidia-cuda-toolkit", fedora: "cuda-toolkit" },
    },
  ],
  vulkan: [
    {
      name: "the Vulkan shader compiler glslc",
      commands: ["glslc"],
      packages: {
        debian: "libvulkan-dev glslc",
        fedora: "vulkan-loader-devel glslc",
        homebrew: "vulkan-headers vulkan-loader shaderc molten-vk",
      },
    },
  ],
  rocm: [
    {
      name: "the HIP compiler hipcc",
      commands: ["hipcc", "/opt/rocm/bin/hipcc"],
      packages: { debian: "hipcc rocm-hip-sdk", fedora: "rocm-hip-devel" },
    },
  ],
  metal: [
    {
      name: "Apple's command line tools (xcrun)",
      commands: ["xcrun"],
      packages: {},
      hint: "macOS only: xcode-select --install",
    },
  ],
};

/** Every tool a build for `backend` needs. */
function buildTools(backend: BuildBackend): BuildTool[] {
  return [GIT, CMAKE, COMPILER, ...BACKEND_TOOLS[backend]];
}

/** The path of a tool's first command found, or null. */
export function locate(tool: BuildTool, pathEnv?: string): string | null {
  for (const command of tool.commands) {
    const found = findExecutable(command, pathEnv);
    if (found) return found;
  }
  return null;
}

/** The backend's own compiler (nvcc, glslc, hipcc, xcrun), or null for the CPU or when missing. */
export function locateBackendCompiler(backend: BuildBackend, pathEnv?: string): string | null {
  const tool = BACKEND_TOOLS[backend][0];
  return tool ? locate(tool, pathEnv) : null;
}

/** The tools a build for `backend` needs and this machine lacks. */
export function missingTools(backend: BuildBackend, pathEnv?: string): BuildTool[] {
  return buildTools(backend).filter((tool) => locate(tool, pathEnv) === null);
}

const INSTALLERS = [
  ["Debian/Ubuntu", "apt-get install", "debian"],
  ["Fedora", "dnf install", "fedora"],
  ["macOS", "brew install", "homebrew"],
] as const;

/** One line per missing tool, naming the package to install on each system. */
export function describeMissing(tools: readonly BuildTool[]): string {
  return tools
    .map((tool) => {
      const ways = INSTALLERS.filter(([, , key]) => tool.packages[key]).map(
        ([system, installer, key]) => `${system}: ${installer} ${tool.packages[key]}`,
      );
      if (tool.hint) ways.push(tool.hint);
      return `  ${tool.name} (${ways.join("; ")})`;
    })
    .join("\n");
}

/**
 * The backend a build uses when none is asked for (SPEC §6.1): Metal on macOS, CUDA when nvcc
 * is found, Vulkan when its SDK is (glslc plus the loader's headers), else the CPU.
 */
export function detectBackend(
  platform: NodeJS.Platform = process.platform,
  pathEnv?: string,
): BuildBackend {
  if (platform === "darwin") return "metal";
  if (locateBackendCompiler("cuda", pathEnv)) return "cuda";
  const vulkanHeaders =
    Boolean(process.env.VULKAN_SDK) || existsSync("/usr/include/vulkan/vulkan.h");
  if (locateBackendCompiler("vulkan", pathEnv) && vulkanHeaders) return "vulkan";
  return "cpu";
}
