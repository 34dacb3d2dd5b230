import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { test } from "node:test";
import { bearerToken, secretsEqual } from "./bearer.js";

const withAuth = (authorization?: string) => ({ headers: { authorization } }) as IncomingMessage;

test("reads the bearer token, whatever the scheme's case", () => {
  assert.equal(bearerToken(withAuth("Bearer abc")), "abc");
  assert.equal(bearerToken(withAuth("bearer  abc ")), "abc");
  assert.equal(bearerToken(withAuth("Basic abc")), undefined);
  assert.equal(bearerToken(withAuth()), undefined);
});

test("compares secrets of any length without throwing", () => {
  assert.ok(secretsEqual("s3cret", "s3cret"));
  assert.ok(!secretsEqual("s3cre", "s3cret"));
  assert.ok(!secretsEqual("s3cret-and-more", "s3cret"));
  assert.ok(!secretsEqual(undefined, "s3cret"));
});
