import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { tempDir } from "../../../test/helpers/launcher.js";
import { loadTunnelIdentity } from "./tunnel-identity.js";

test("an identity is created on first use, owner-only, and the same one is loaded afterwards", async () => {
  const stateDir = await tempDir();
  const created = await loadTunnelIdentity(stateDir);
  const file = join(stateDir, "tunnel", "identity.pem");
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.match(created.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  const certificate = new X509Certificate(created.cert);
  assert.equal(certificate.fingerprint256, created.fingerprint);
  assert.equal(certificate.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");

  assert.deepEqual(await loadTunnelIdentity(stateDir), created);
  const other = await loadTunnelIdentity(await tempDir());
  assert.notEqual(other.fingerprint, created.fingerprint);
});

test("a file that is not a matching key and certificate is an error, not replaced", async () => {
  const stateDir = await tempDir();
  const mine = await loadTunnelIdentity(stateDir);
  const theirs = await loadTunnelIdentity(await tempDir());
  const file = join(stateDir, "tunnel", "identity.pem");
  await writeFile(file, `${mine.key}${theirs.cert}`);
  await assert.rejects(
    loadTunnelIdentity(stateDir),
    /identity\.pem is not a tunnel identity.*does not match/,
  );
  await writeFile(file, mine.key);
  await assert.rejects(loadTunnelIdentity(stateDir), /lacks a private key or a certificate/);
  assert.equal(await readFile(file, "utf8"), mine.key);
});
