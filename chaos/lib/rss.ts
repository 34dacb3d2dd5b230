/**
 * Resident memory of processes over time, read from /proc, and the trend of it: what tells
 * "bounded" from "leaking" in overload and soak scenarios.
 */
import { readFile } from "node:fs/promises";

const MIB = 1024 * 1024;

export interface RssSample {
  /** Milliseconds since sampling began. */
  atMs: number;
  mib: number;
}

export interface RssSampler {
  samples(): readonly RssSample[];
  stop(): void;
}

/** Samples `pid()` (read anew each time, for a process that is restarted) every `everyMs`. */
export function sampleRss(pid: () => number, everyMs = 500): RssSampler {
  const samples: RssSample[] = [];
  const began = performance.now();
  const take = async () => {
    const mib = await rssMib(pid());
    if (mib !== undefined) samples.push({ atMs: performance.now() - began, mib });
  };
  void take();
  const timer = setInterval(() => void take(), everyMs);
  return { samples: () => samples, stop: () => clearInterval(timer) };
}

/** VmRSS of a process in MiB, or undefined when it is gone. */
export async function rssMib(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const kib = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
    return Number.isFinite(kib) ? (kib * 1024) / MIB : undefined;
  } catch {
    return undefined;
  }
}

export interface RssSummary {
  firstMib: number;
  peakMib: number;
  lastMib: number;
  /** Least-squares slope over the samples after `warmupShare` of them, in MiB per minute. */
  slopeMibPerMin: number;
}

/** First, peak and last RSS, and the slope once warm (the start of a run only fills caches). */
export function summarize(samples: readonly RssSample[], warmupShare = 0.25): RssSummary {
  const warm = samples.slice(Math.floor(samples.length * warmupShare));
  const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
  const xs = warm.map((sample) => sample.atMs / 60_000);
  const ys = warm.map((sample) => sample.mib);
  const mx = mean(xs);
  const my = mean(ys);
  const spread = xs.reduce((sum, x) => sum + (x - mx) ** 2, 0);
  const slope =
    warm.length < 2 || spread === 0
      ? 0
      : xs.reduce((sum, x, i) => sum + (x - mx) * ((ys[i] ?? my) - my), 0) / spread;
  return {
    firstMib: round(samples[0]?.mib ?? NaN),
    peakMib: round(Math.max(...samples.map((sample) => sample.mib))),
    lastMib: round(samples.at(-1)?.mib ?? NaN),
    slopeMibPerMin: round(slope),
  };
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
