import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { test } from "node:test";
import { RoleMeshError } from "./errors.js";
import { MAC_PATTERN, magicPacket, sendMagicPacket } from "./wake-on-lan.js";

const MAC_BYTES = [0x02, 0x00, 0x5e, 0x10, 0xab, 0xcd];

/** The packet built by hand: 6 × 0xFF, then the MAC 16 times. */
const expectedPacket = Buffer.from([
  ...Array<number>(6).fill(0xff),
  ...Array.from({ length: 16 }, () => MAC_BYTES).flat(),
]);

test("MAC_PATTERN takes colons or dashes in any case, and nothing else", () => {
  for (const mac of ["02:00:5e:10:ab:cd", "02-00-5E-10-AB-CD", "aA:bB:cC:dD:eE:fF"]) {
    assert.match(mac, MAC_PATTERN);
  }
  for (const mac of [
    "",
    "02:00:5e:10:ab",
    "02:00:5e:10:ab:cd:ef",
    "02:00-5e:10:ab:cd",
    "02005e10abcd",
    "02:00:5e:10:ab:cg",
    " 02:00:5e:10:ab:cd",
  ]) {
    assert.doesNotMatch(mac, MAC_PATTERN);
  }
});

test("the magic packet is 6 × 0xFF then the MAC 16 times: 102 bytes", () => {
  assert.equal(expectedPacket.length, 102);
  assert.deepEqual(magicPacket("02:00:5e:10:ab:cd"), expectedPacket);
  assert.deepEqual(magicPacket("02-00-5E-10-AB-CD"), expectedPacket);
});

test("a bad MAC is refused with invalid_request naming mac", () => {
  assert.throws(
    () => magicPacket("02:00:5e:10:ab"),
    (err) => err instanceof RoleMeshError && err.code === "invalid_request" && err.param === "mac",
  );
});

test("sendMagicPacket delivers exactly the packet over UDP", async () => {
  const listener = createSocket("udp4");
  listener.bind(0, "127.0.0.1");
  await once(listener, "listening");
  try {
    const received = once(listener, "message") as Promise<[Buffer]>;
    await sendMagicPacket({
      mac: "02:00:5e:10:ab:cd",
      address: "127.0.0.1",
      port: listener.address().port,
    });
    const [packet] = await received;
    assert.deepEqual(packet, expectedPacket);
  } finally {
    listener.close();
  }
});

test("sendMagicPacket refuses a bad MAC before sending anything", async () => {
  await assert.rejects(
    sendMagicPacket({ mac: "not-a-mac", address: "127.0.0.1", port: 9 }),
    (err) => err instanceof RoleMeshError && err.code === "invalid_request",
  );
});

test("a packet that cannot be sent is an internal_error naming address:port", async () => {
  // Port 0 is no destination: the send fails before anything leaves the machine.
  await assert.rejects(
    sendMagicPacket({ mac: "02:00:5e:10:ab:cd", address: "127.0.0.1", port: 0 }),
    (err) =>
      err instanceof RoleMeshError &&
      err.code === "internal_error" &&
      err.message.includes("127.0.0.1:0"),
  );
});
