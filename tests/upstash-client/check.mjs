// Drives the popup gateway with Upstash's official client (@upstash/redis), to show that the gateway
// speaks the protocol as that client expects it, not only as our edge does.
//
// Environment: GATEWAY_URL, GATEWAY_TOKEN, KEY_PREFIX; USER_ID (a customer whose hash the caller
// wrote: s:1:0 = 3, n:7 = 2, name = "Ñoño ✓"), CATALOG_VERSION (the version the caller wrote), and
// EVENT_SCRIPT (popup_core::store::EVENT_SCRIPT, the only script the gateway runs). Prints one JSON
// object with every check and exits non-zero if any failed.

import { Redis } from "@upstash/redis";
import { isDeepStrictEqual } from "node:util";

const env = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return value;
};

const url = env("GATEWAY_URL");
const token = env("GATEWAY_TOKEN");
const prefix = env("KEY_PREFIX");
const user = env("USER_ID");
const version = Number(env("CATALOG_VERSION"));
const script = env("EVENT_SCRIPT");

// A hung gateway must fail the check, not hang the test that runs it.
setTimeout(() => {
  console.log(JSON.stringify({ ok: false, error: "timed out" }));
  process.exit(1);
}, 30_000).unref();

// The client's defaults (read-your-writes, telemetry headers, auto-pipelining), but no retries: a failure
// should show at once.
const options = { url, token, retry: false };
// The client's default: results base64-encoded by the server, decoded by the client.
const redis = new Redis(options);
const plain = new Redis({ ...options, responseEncoding: false });

const versionKey = `${prefix}:{catalog}:version`;
const userKey = `${prefix}:u:{${user}}`;
const dayKey = `${prefix}:u:{${user}}:d:20454`;
const markerKey = `${prefix}:u:{${user}}:e:client-check:impression`;
const expectedUser = { "s:1:0": 3, "n:7": 2, name: "Ñoño ✓" };

const checks = [];

async function expect(name, run, expected) {
  try {
    const got = await run();
    checks.push({ name, ok: isDeepStrictEqual(got, expected), got, expected });
  } catch (error) {
    checks.push({ name, ok: false, error: String(error?.message ?? error) });
  }
}

async function expectRefusal(name, run) {
  try {
    const got = await run();
    checks.push({ name, ok: false, got, expected: "a refusal" });
  } catch (error) {
    const message = String(error?.message ?? error);
    checks.push({ name, ok: message.includes("not allowed by the gateway"), error: message });
  }
}

await expect("ping", () => redis.ping(), "PONG");
await expect("get the catalog version", () => redis.get(versionKey), version);
await expect("get the catalog version, unencoded", () => plain.get(versionKey), version);
await expect("hgetall a user", () => redis.hgetall(userKey), expectedUser);
await expect("hgetall a user, unencoded", () => plain.hgetall(userKey), expectedUser);
await expect("hgetall a missing day hash", () => redis.hgetall(dayKey), null);
await expect(
  "pipeline",
  () => redis.pipeline().get(versionKey).hgetall(userKey).hgetall(dayKey).exec(),
  [version, expectedUser, null],
);
await expect(
  "multi-exec",
  () => redis.multi().get(versionKey).hgetall(userKey).exec(),
  [version, expectedUser],
);
const event = () =>
  redis.eval(script, [userKey, dayKey, markerKey], ["impression", "7", "1767225600", "172800", "86400"]);
await expect("the event script records an impression", event, 1);
await expect("the event script ignores a retry", event, 0);
await expect("the day hash holds it", () => redis.hgetall(dayKey), { "n:7": 1, all: 1 });
await expect(
  "xadd to the events stream",
  async () => typeof (await redis.xadd(`${prefix}:events`, "*", { id: "client-check", kind: "impression" })),
  "string",
);
await expectRefusal("flushall is refused", () => redis.flushall());
await expectRefusal("keys is refused", () => redis.keys("*"));
await expectRefusal("get outside the key space is refused", () => redis.get(`${prefix}-outside`));
await expectRefusal("set is refused", () => redis.set(versionKey, 1));
await expectRefusal("eval of another script is refused", () => redis.eval("return 1", [userKey], []));
await expectRefusal("a pipeline with flushall is refused whole", () =>
  redis.pipeline().get(versionKey).flushall().exec(),
);
await expect("the catalog version is still there", () => redis.get(versionKey), version);

const ok = checks.every((check) => check.ok);
console.log(JSON.stringify({ ok, checks }, null, 2));
process.exit(ok ? 0 : 1);
