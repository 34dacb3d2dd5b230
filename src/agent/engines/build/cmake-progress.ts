/** Where a compile stands, read from one line of `cmake --build` output. */
export interface CompileStep {
  /** `compiling` while objects are built, `linking` while a program is linked. */
  phase: "compiling" | "linking";
  percent: number;
  /** The file or target the line names, for a progress line. */
  detail: string;
}

// Makefiles print `[ 45%] Building CXX object …`; Ninja prints `[12/345] Building CXX object …`.
const MAKE_STEP = /^\[\s*(\d{1,3})%\]\s+(.*)$/;
const NINJA_STEP = /^\[(\d+)\/(\d+)\]\s+(.*)$/;

/** Reads a progress line of cmake's Makefile or Ninja generator; undefined for any other line. */
export function parseCompileStep(line: string): CompileStep | undefined {
  let percent: number;
  let text: string;
  const make = MAKE_STEP.exec(line);
  const ninja = make ? null : NINJA_STEP.exec(line);
  if (make) {
    percent = Number(make[1]);
    text = make[2] ?? "";
  } else if (ninja) {
    const total = Number(ninja[2]);
    if (total === 0) return undefined;
    percent = Math.floor((Number(ninja[1]) * 100) / total);
    text = ninja[3] ?? "";
  } else {
    return undefined;
  }
  const phase = /^Linking\b/.test(text) ? "linking" : "compiling";
  // The last word is the object or program: `…/llama-kv-cache.cpp.o` → `llama-kv-cache.cpp`.
  const last = text.split(/\s+/).at(-1) ?? "";
  const detail = (last.split("/").at(-1) ?? "").replace(/\.o$/, "");
  return { phase, percent: Math.min(percent, 100), detail };
}
