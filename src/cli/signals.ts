/**
 * Runs `stop` on the first SIGINT or SIGTERM (or when `requested` resolves: a `node.stop`
 * command) and resolves when it is done. A second signal exits at once; servers still die
 * with us through their death signal.
 */
export function untilSignalled(
  log: { warn(msg: string): void },
  stop: () => Promise<void>,
  requested?: Promise<void>,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let stopping = false;
    const begin = () => {
      stopping = true;
      stop().then(resolve, reject);
    };
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        log.warn(`${signal} again: exiting now`);
        process.exit(130);
      }
      begin();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    void requested?.then(() => {
      if (!stopping) begin();
    });
  });
}
