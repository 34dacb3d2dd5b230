/** One chaos scenario: a name, what it proves, and a run that reports pass/fail with figures. */

export interface Outcome {
  pass: boolean;
  /** Figures worth printing, e.g. `{ rounds: 5, hung: 0 }`. */
  figures: Record<string, number | string>;
  /** Why it failed, when it did. */
  reason?: string;
}

export interface RunOptions {
  /** How long repeated scenarios go on (rounds, overload), in seconds. */
  durationS: number;
  /** How long the soak runs, in seconds. */
  soakS: number;
}

export interface Scenario {
  name: string;
  run(options: RunOptions): Promise<Outcome>;
}

/** A check inside a scenario; failing ones are collected into the outcome's reason. */
export class Checks {
  readonly #failures: string[] = [];

  expect(condition: boolean, what: string): void {
    if (!condition) this.#failures.push(what);
  }

  outcome(figures: Outcome["figures"]): Outcome {
    return this.#failures.length === 0
      ? { pass: true, figures }
      : { pass: false, figures, reason: this.#failures.join("; ") };
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
