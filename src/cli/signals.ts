/**
 * Runs `stop` on the first SIGINT or SIGTERM and resolves when it is done. A second signal
 * exits at once; servers still die with us through their death signal.
 */
export function untilSignalled(
  log: { warn(msg: string): void },
  stop: () => Promise<void>,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        log.warn(`${signal} again: exiting now`);
        process.exit(130);
      }
      stopping = true;
      stop().then(resolve, reject);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}
