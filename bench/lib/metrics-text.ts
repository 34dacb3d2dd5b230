/** Reading a process's `/metrics` (Prometheus text) in benchmarks and chaos scenarios. */
import { request } from "undici";

/** The sum of every labelled series of `family` at `url`'s `/metrics`. */
export async function sumOfSeries(url: string, family: string): Promise<number> {
  const text = await (await request(`${url}/metrics`)).body.text();
  const series = new RegExp(`^${family}\\{[^}]*\\} (\\d+)`, "gm");
  return [...text.matchAll(series)].reduce((sum, match) => sum + Number(match[1]), 0);
}
