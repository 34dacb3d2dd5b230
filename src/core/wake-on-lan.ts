/**
 * Wake-on-LAN (SPEC §11): the magic packet that wakes a sleeping machine whose network card
 * listens for it. The gateway sends it for a `wake: {wol}` entry, or asks an awake agent on the
 * sleeping machine's LAN to (`node.wol`): broadcasts do not cross routers.
 */
import { createSocket } from "node:dgram";
import type { WakeOnLanArgs } from "../protocol/wakeable.js";
import { RoleMeshError } from "./errors.js";

/** A MAC address: six hex pairs, all separated by `:` or all by `-`, in any case. */
export const MAC_PATTERN = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$/i;

/** The limited broadcast address: every machine on the sender's LAN hears the packet. */
export const WOL_DEFAULT_ADDRESS = "255.255.255.255";

/** UDP port 9 (discard), where Wake-on-LAN senders conventionally aim; 7 is the other usual. */
export const WOL_DEFAULT_PORT = 9;

/** The packet opens with this many 0xFF bytes, then repeats the MAC this many times. */
const SYNC_BYTES = 6;
const MAC_REPEATS = 16;

/**
 * The magic packet for `mac`: six 0xFF bytes, then the MAC's six bytes 16 times (102 bytes).
 * Throws 400 `invalid_request` (param `mac`) for anything but a MAC address.
 */
export function magicPacket(mac: string): Buffer {
  if (!MAC_PATTERN.test(mac)) {
    throw new RoleMeshError(
      "invalid_request",
      `mac: expected a MAC address such as aa:bb:cc:dd:ee:ff, not "${mac}"`,
      { param: "mac" },
    );
  }
  const address = Buffer.from(mac.replace(/[:-]/g, ""), "hex");
  return Buffer.concat([
    Buffer.alloc(SYNC_BYTES, 0xff),
    ...Array.from({ length: MAC_REPEATS }, () => address),
  ]);
}

/**
 * Sends the magic packet for `mac` to `address:port` over UDP, broadcast addresses included,
 * and resolves once it has left. Nothing answers: whether the machine woke shows only when it
 * comes up. A bad MAC is 400 `invalid_request`; a packet the system refuses to send (no route,
 * broadcast not permitted) is 500 `internal_error` naming `address:port`.
 */
export async function sendMagicPacket({ mac, address, port }: WakeOnLanArgs): Promise<void> {
  const packet = magicPacket(mac);
  const socket = createSocket("udp4");
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      // SO_BROADCAST can only be set on a bound socket; without it a broadcast is EACCES.
      socket.bind(0, () => {
        try {
          socket.setBroadcast(true);
          socket.send(packet, port, address, (err) => (err ? reject(err) : resolve()));
        } catch (err) {
          reject(err as Error);
        }
      });
    });
  } catch (err) {
    throw new RoleMeshError(
      "internal_error",
      `the magic packet could not be sent to ${address}:${port}: ${(err as Error).message}`,
      { cause: err },
    );
  } finally {
    socket.close();
  }
}
