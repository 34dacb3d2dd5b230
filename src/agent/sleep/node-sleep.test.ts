import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { Deferred } from "../../core/async.js";
import { RoleMeshError } from "../../core/errors.js";
import { NodeSleep } from "./node-sleep.js";

const RESUME_DELAY_MS = 5000;

/** A NodeSleep over `command` whose registration calls and log messages are recorded. */
function nodeSleep(command: string[], busy: string[] = []) {
  const events: string[] = [];
  const resumed = new Deferred<number>();
  const log = pino(
    { level: "info" },
    {
      write: (line: string) => events.push(`log: ${(JSON.parse(line) as { msg: string }).msg}`),
    },
  );
  const sleep = new NodeSleep({
    nodeId: "napper",
    command,
    busyWith: () => busy,
    pauseRegistration: () => {
      events.push("pause");
      return Promise.resolve();
    },
    resumeRegistration: (delayMs) => {
      events.push(`resume in ${delayMs} ms`);
      resumed.resolve(delayMs);
    },
    resumeDelayMs: RESUME_DELAY_MS,
    log,
  });
  return { sleep, events, resumed: resumed.promise };
}

const refusedWith = (code: string, text: RegExp) => (err: unknown) =>
  err instanceof RoleMeshError && err.code === code && text.test(err.message);

test("without a sleep_command the node cannot be put to sleep: invalid_request naming the key", () => {
  const { sleep, events } = nodeSleep([]);
  assert.throws(() => sleep.prepare(), refusedWith("invalid_request", /sleep_command/));
  assert.deepEqual(events, []);
});

test("a busy node refuses with conflict saying what is busy, and stays registered", () => {
  const { sleep, events } = nodeSleep(["true"], ["gpu:0: 1 in flight, 1 queued"]);
  assert.throws(() => sleep.prepare(), refusedWith("conflict", /gpu:0: 1 in flight, 1 queued/));
  assert.deepEqual(events, []);
});

test("deregisters, runs the command without a shell and with ROLEMESH_NODE_ID, registers a heartbeat later", async () => {
  const { sleep, events, resumed } = nodeSleep([
    "/bin/sh",
    "-c",
    'echo "asleep as $ROLEMESH_NODE_ID"',
  ]);
  const goToSleep = sleep.prepare();
  assert.throws(() => sleep.prepare(), refusedWith("conflict", /already going to sleep/));
  goToSleep();
  assert.equal(await resumed, RESUME_DELAY_MS);
  const pausedAt = events.indexOf("pause");
  const saidAt = events.indexOf("log: asleep as napper");
  assert.ok(pausedAt >= 0 && saidAt > pausedAt, `deregistered before the command: ${events}`);
  assert.equal(events.at(-1), `resume in ${RESUME_DELAY_MS} ms`);
  // Once the command has ended, the node may be put to sleep again.
  assert.doesNotThrow(() => sleep.prepare());
});

test("a command that fails is logged with its exit status and the node registers again at once", async () => {
  const { sleep, events, resumed } = nodeSleep(["/bin/sh", "-c", "exit 3"]);
  sleep.prepare()();
  assert.equal(await resumed, 0);
  assert.ok(events.includes("log: sleep_command exited with 3; the node stays awake"), `${events}`);
});

test("a command that cannot start counts as failed", async () => {
  const { sleep, events, resumed } = nodeSleep(["/nonexistent/rolemesh-suspend"]);
  sleep.prepare()();
  assert.equal(await resumed, 0);
  assert.ok(
    events.some((event) => event.startsWith("log: sleep_command exited with 127")),
    `${events}`,
  );
});
