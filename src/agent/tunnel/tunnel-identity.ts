import { X509Certificate, createPrivateKey, webcrypto } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomically } from "../../core/json-file.js";

/** The key and certificate an agent presents on its tunnel, and the fingerprint peers pin. */
export interface TunnelIdentity {
  /** The private key, PKCS#8 PEM. */
  key: string;
  /** The self-signed certificate, PEM. */
  cert: string;
  /** SHA-256 of the certificate, `AA:BB:…` (`X509Certificate.fingerprint256`): what the agent registers. */
  fingerprint: string;
}

/** ECDSA P-256: every TLS 1.3 stack signs with it, and OpenSSL does it fast. */
const KEY_ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

/** RFC 5280 §4.1.2.5's "no well-defined expiration": peers trust the pin, not the dates. */
const NO_EXPIRY = new Date("9999-12-31T23:59:59Z");

const PEM_KEY = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/;
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

/**
 * This agent's tunnel identity, kept in `<stateDir>/tunnel/identity.pem` (key then certificate,
 * readable by the owner only). Created on first use, in one atomic write so a crash never
 * leaves a key without its certificate; loaded afterwards, so the fingerprint peers pinned
 * stays valid across restarts. A file that is not a matching key and certificate is an error,
 * not silently replaced: a new identity means every peer must learn its fingerprint again.
 */
export async function loadTunnelIdentity(stateDir: string): Promise<TunnelIdentity> {
  const file = join(stateDir, "tunnel", "identity.pem");
  let pem: string;
  try {
    pem = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    pem = await createIdentityPem();
    await writeFileAtomically(file, pem);
  }
  return parseIdentity(pem, file);
}

function parseIdentity(pem: string, file: string): TunnelIdentity {
  const key = PEM_KEY.exec(pem)?.[0];
  const cert = PEM_CERT.exec(pem)?.[0];
  try {
    if (!key || !cert) throw new Error("it lacks a private key or a certificate");
    const certificate = new X509Certificate(cert);
    if (!certificate.checkPrivateKey(createPrivateKey(key))) {
      throw new Error("its key does not match its certificate");
    }
    return { key: `${key}\n`, cert: `${cert}\n`, fingerprint: certificate.fingerprint256 };
  } catch (err) {
    throw new Error(
      `${file} is not a tunnel identity (${(err as Error).message}); remove it to create a new ` +
        "one, which the agent registers anew",
      { cause: err },
    );
  }
}

async function createIdentityPem(): Promise<string> {
  // Loaded only here, once per state dir: the library takes a noticeable time to import.
  // @peculiar/x509 needs the Reflect metadata polyfill in place before it loads.
  await import("reflect-metadata");
  const { PemConverter, X509CertificateGenerator } = await import("@peculiar/x509");
  const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"]);
  const certificate = await X509CertificateGenerator.createSelfSigned(
    {
      name: "CN=rolemesh-agent-tunnel",
      keys,
      signingAlgorithm: KEY_ALGORITHM,
      notBefore: new Date(),
      notAfter: NO_EXPIRY,
    },
    webcrypto,
  );
  const key = PemConverter.encode(
    await webcrypto.subtle.exportKey("pkcs8", keys.privateKey),
    "PRIVATE KEY",
  );
  return `${key}\n${certificate.toString("pem")}\n`;
}
