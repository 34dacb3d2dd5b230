/** How numbers and times read on the console. */

export function formatMiB(mib: number): string {
  if (mib >= 1024) return `${(mib / 1024).toFixed(mib >= 10 * 1024 ? 0 : 1)} GiB`;
  return `${Math.round(mib)} MiB`;
}

/** Sizes and traffic: below a MiB in B or KiB, so a tunnel's first bytes do not read as 0. */
export function formatBytes(bytes: number | null): string {
  if (bytes === null) return "?";
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KiB`;
  return formatMiB(bytes / (1024 * 1024));
}

/** "3 s ago", "2 min ago", … */
export function formatAgo(ms: number | undefined): string {
  if (ms === undefined) return "never";
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

export function formatRate(perSecond: number): string {
  return perSecond >= 100 ? perSecond.toFixed(0) : perSecond.toFixed(1);
}
