// Lectern's identity server: Better Auth (email + password, sessions, EdDSA JWTs + JWKS) on Node.
import { randomUUID } from "node:crypto";
import http from "node:http";

import { betterAuth } from "better-auth";
import { APIError, createAuthMiddleware } from "better-auth/api";
import { getMigrations } from "better-auth/db/migration";
import { toNodeHandler } from "better-auth/node";
import { bearer, jwt } from "better-auth/plugins";
import { PostgresDialect } from "kysely";
import pg from "pg";

const SCHEMA = "auth";
const BASE_PATH = "/api/auth";
const MAX_BODY_BYTES = 64 * 1024;
const WEAK_SECRETS = new Set(["", "changeme", "change-me", "secret", "admin", "password", "dev",
  "test", "better-auth-secret-123456789"]);
// Any fixed key works: only the auth server takes this lock, around its own migrations.
const MIGRATION_LOCK = 7_151_203_517;
// Methods that change nothing: Better Auth's origin (CSRF) check skips them, and so does ours.
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
// A request id as the Python services accept one (lectern_common.middleware).
const SAFE_ID = /^[A-Za-z0-9._:-]{8,128}$/;
// The user fields a client sets (sign-up, update-user), with their longest accepted value.
const USER_FIELDS = { name: 100, email: 254, image: 2048 };
// What the stores accept and a reader can be shown, as lectern_common.contracts.storable_text:
// no control characters (tab and newlines aside) and no bidirectional overrides or isolates.
// Unpaired surrogates are refused by isWellFormed().
const NOT_STORABLE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

/** One JSON line per event, like the Python services' structlog output; never secrets. */
function log(level, event, fields = {}) {
  const line = { event, level, service: "auth", timestamp: new Date().toISOString(), ...fields };
  (level === "error" || level === "warning" ? process.stderr : process.stdout)
    .write(`${JSON.stringify(line)}\n`);
}

/** Reads and checks the configuration; throws (so the process exits) on anything unsafe. */
function loadConfig(env = process.env) {
  const production = (env.LECTERN_ENV ?? "local") === "production";
  const secret = env.BETTER_AUTH_SECRET ?? "";
  if (production && (secret.length < 32 || WEAK_SECRETS.has(secret.trim().toLowerCase()))) {
    throw new Error("production mode needs a strong BETTER_AUTH_SECRET (32+ random characters)");
  }
  if (!secret) {
    throw new Error("BETTER_AUTH_SECRET is not set (`make run` sets it)");
  }
  if (!env.DATABASE_URL) {
    throw new Error("DATABASE_URL is not set (`make run` sets it)");
  }
  const baseURL = env.BETTER_AUTH_URL || "http://127.0.0.1:8080";
  const origins = (env.AUTH_TRUSTED_ORIGINS ?? "").split(",").map((o) => o.trim()).filter(Boolean);
  if (!production) {
    // The local gateway's own origins are always trusted in local mode (DESIGN.md).
    origins.push("http://127.0.0.1:8080", "http://localhost:8080");
  }
  const jwtTtl = Number.parseInt(env.AUTH_JWT_TTL_S ?? "300", 10);
  if (!Number.isInteger(jwtTtl) || jwtTtl < 1 || jwtTtl > 3600) {
    throw new Error("AUTH_JWT_TTL_S must be an integer between 1 and 3600");
  }
  const rateLimit = (env.AUTH_RATE_LIMIT ?? (production ? "on" : "off")).trim().toLowerCase();
  if (!["on", "off"].includes(rateLimit)) {
    throw new Error("AUTH_RATE_LIMIT must be on or off");
  }
  return {
    production,
    rateLimit: rateLimit === "on",
    secret,
    baseURL,
    trustedOrigins: [...new Set([baseURL, ...origins])],
    databaseUrl: env.DATABASE_URL,
    pooled: isPooled(env.DATABASE_URL ?? "", env.DATABASE_POOLED),
    host: env.AUTH_HOST || "127.0.0.1",
    port: Number.parseInt(env.AUTH_PORT ?? "8105", 10),
    jwtTtl,
  };
}

/** Whether the URL goes through PgBouncer in transaction mode (Neon's pooled URL): set by
 * DATABASE_POOLED, else true exactly for a Neon `-pooler` host (as lectern_common.db). */
function isPooled(databaseUrl, flag) {
  if (flag) return ["1", "true", "yes", "on"].includes(flag.toLowerCase());
  try {
    return new URL(databaseUrl).hostname.split(".")[0].endsWith("-pooler");
  } catch {
    return false;
  }
}

/** A pg pool on Lectern's database with bounded waits. Better Auth names the `auth` schema in
 * its SQL (schemaName), so no session search_path is needed: a transaction-mode pooler would
 * not keep one, and it refuses search_path and statement_timeout as startup parameters. */
function createPool(config) {
  return new pg.Pool({
    // pg understands both TCP URLs and the embedded server's `postgresql://u:@/db?host=/socketdir`.
    connectionString: config.databaseUrl,
    ...(config.pooled ? {} : { options: "-c statement_timeout=10000" }),
    query_timeout: 15000,
    max: 10,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30000,
    application_name: "lectern-auth",
  });
}

/** Takes the transaction-scoped advisory lock `key` in an open transaction on `client`; tries
 * again (50 ms doubling to 1 s) rather than waiting inside a transaction, which through a
 * pooler would pin a server connection per waiter (as lectern_common.db.advisory_lock). */
async function takeXactLock(client, key, waitMs = 120_000) {
  const deadline = Date.now() + waitMs;
  for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
    await client.query("BEGIN");
    const { rows } = await client.query("SELECT pg_try_advisory_xact_lock($1) AS taken", [key]);
    if (rows[0].taken) return;
    await client.query("ROLLBACK");
    if (Date.now() > deadline) throw new Error("the migration lock is still held");
    await new Promise((resolve) => setTimeout(resolve, delay * (0.5 + Math.random())));
  }
}

/** Creates the schema and Better Auth's tables. A transaction-scoped advisory lock, held by an
 * open transaction on one client while the migration runs on others, keeps two replicas apart
 * (a session lock through a transaction-mode pooler could be unlocked on another server
 * connection, or never). */
async function migrate(pool, auth) {
  const holder = await pool.connect();
  try {
    await takeXactLock(holder, MIGRATION_LOCK);
    // On another connection, committed at once: the migration's own connections must see it
    // (made inside the holder's transaction it would wait for the holder, which waits for them).
    await pool.query(`CREATE SCHEMA IF NOT EXISTS "${SCHEMA}"`);
    const { toBeCreated, toBeAdded, runMigrations } = await getMigrations(auth.options);
    if (toBeCreated.length || toBeAdded.length) {
      await runMigrations();
      log("info", "auth.migrated", {
        created: toBeCreated.map((t) => t.table), altered: toBeAdded.map((t) => t.table),
      });
    }
    await holder.query("COMMIT");
  } catch (error) {
    await holder.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    holder.release();
  }
}

/** The first user field of `body` that is not acceptable, as [field, reason], or null. */
function badUserField(body) {
  for (const [field, maxLength] of Object.entries(USER_FIELDS)) {
    const value = body?.[field];
    if (value === undefined || value === null) continue;
    if (typeof value !== "string") return [field, "must be a string"];
    if (value.length > maxLength) return [field, `must be at most ${maxLength} characters`];
    if (!value.isWellFormed() || NOT_STORABLE.test(value)) {
      return [field, "must not contain control or bidirectional-override characters"];
    }
  }
  if (typeof body?.name === "string" && !body.name.trim()) return ["name", "must not be blank"];
  return null;
}

/** Refuses sign-up and profile changes whose user fields are too long or not storable text
 * (Better Auth itself takes any length, and PostgreSQL refuses NUL with a 500). */
const checkUserFields = createAuthMiddleware(async (ctx) => {
  if (ctx.path !== "/sign-up/email" && ctx.path !== "/update-user") return;
  const bad = badUserField(ctx.body);
  if (bad) {
    throw new APIError("BAD_REQUEST", {
      code: "INVALID_USER_FIELD",
      message: `${bad[0]} ${bad[1]}`,
      field: bad[0],
      request_id: ctx.headers?.get("x-request-id") ?? null,
    });
  }
});

function createAuth(config, pool) {
  return betterAuth({
    appName: "Lectern",
    baseURL: config.baseURL,
    basePath: BASE_PATH,
    secret: config.secret,
    database: { dialect: new PostgresDialect({ pool }), type: "postgres", schemaName: SCHEMA },
    trustedOrigins: config.trustedOrigins,
    emailAndPassword: { enabled: true, minPasswordLength: 8, maxPasswordLength: 128 },
    session: { expiresIn: 60 * 60 * 24 * 7, updateAge: 60 * 60 * 24 },
    // Shared across replicas through Postgres; the gateway limits /api/auth/* per address too.
    // On in production (AUTH_RATE_LIMIT=on|off overrides, e.g. for its test).
    rateLimit: { enabled: config.rateLimit, storage: "database" },
    advanced: { ipAddress: { ipAddressHeaders: ["x-forwarded-for"] } },
    hooks: { before: checkUserFields },
    plugins: [
      bearer(),
      jwt({
        jwks: { keyPairConfig: { alg: "EdDSA", crv: "Ed25519" } },
        jwt: {
          issuer: config.baseURL,
          audience: config.baseURL,
          // Short: a JWT cannot be revoked, so sign-out takes effect for JWTs only at expiry.
          expirationTime: `${config.jwtTtl}s`,
          // Only the subject: services look readers up by id, no personal data in the token.
          definePayload: () => ({}),
        },
      }),
    ],
    logger: {
      level: config.production ? "warn" : "info",
      log: (level, message) => log(level === "warn" ? "warning" : level, "better_auth.log",
        { message }),
    },
  });
}

function sendJson(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data) });
  res.end(data);
}

/** The error envelope of the Python services, with this request's id. */
function sendError(req, res, status, code, message) {
  // The connection is not reused after a refused body: its rest is never read.
  if (status === 413) res.setHeader("connection", "close");
  sendJson(res, status, { error: { code, message, request_id: req.headers["x-request-id"] } });
}

/** The whole body, or null as soon as it is over `limit` bytes (declared or counted: a
 * chunked body declares nothing). */
function readBody(req, limit) {
  if (Number.parseInt(req.headers["content-length"] ?? "0", 10) > limit) {
    return Promise.resolve(null);
  }
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > limit) {
        req.pause();
        resolve(null);
      } else {
        chunks.push(chunk);
      }
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

async function serve(handle, req, res) {
  if (!(req.url ?? "").startsWith(`${BASE_PATH}/`)) {
    sendError(req, res, 404, "not_found", "not found");
    return;
  }
  if (!SAFE_METHODS.has(req.method)) {
    // Better Auth checks an Origin only when there is one; a browser always sends it with a
    // request that changes something, so one without it is refused (CSRF, scripted sign-ups).
    if (!req.headers.origin) {
      sendError(req, res, 403, "origin_required", "this request needs an Origin header");
      return;
    }
    const body = await readBody(req, MAX_BODY_BYTES);
    if (body === null) {
      sendError(req, res, 413, "payload_too_large",
        `the request body must be at most ${MAX_BODY_BYTES} bytes`);
      return;
    }
    // Read here, so better-call takes the body from `req.body` instead of the spent stream.
    if (body.length) req.body = body.toString("utf8");
  }
  withRetryAfter(res);
  await handle(req, res);
}

/** Better Auth's own 429 (its rate limiter) says when to come back only in X-Retry-After;
 * every 429 of Lectern carries the standard Retry-After (seconds) as well. */
function withRetryAfter(res) {
  const writeHead = res.writeHead.bind(res);
  res.writeHead = (status, ...rest) => {
    if (status === 429 && !res.hasHeader("retry-after")) {
      const seconds = Number.parseInt(String(res.getHeader("x-retry-after") ?? ""), 10);
      res.setHeader("retry-after", String(Number.isInteger(seconds) && seconds > 0 ? seconds : 1));
    }
    return writeHead(status, ...rest);
  };
}

function createServer(auth) {
  const handle = toNodeHandler(auth);
  // The gateway caps a request's headers at 32 KiB (+4 KiB): node's own 16 KB would answer
  // what passes it with an empty 431 instead of reading it.
  return http.createServer({ maxHeaderSize: 64 * 1024 }, (req, res) => {
    const started = process.hrtime.bigint();
    const incoming = req.headers["x-request-id"];
    // Every answer names its request id, as the Python services' answers do.
    req.headers["x-request-id"] = incoming && SAFE_ID.test(incoming) ? incoming : randomUUID().replaceAll("-", "");
    res.setHeader("x-request-id", req.headers["x-request-id"]);
    res.on("finish", () => {
      const path = (req.url ?? "").split("?")[0];
      if (path !== `${BASE_PATH}/ok`) {
        log("info", "http.request", {
          method: req.method, path, status: res.statusCode,
          duration_ms: Number((process.hrtime.bigint() - started) / 10_000n) / 100,
          request_id: req.headers["x-request-id"],
        });
      }
    });
    serve(handle, req, res).catch((error) => {
      log("error", "http.unhandled", { error: error?.name ?? "Error", request_id: req.headers["x-request-id"] });
      if (!res.headersSent) sendError(req, res, 500, "internal_error", "internal error");
    });
  });
}

async function main() {
  const config = loadConfig();
  const pool = createPool(config);
  pool.on("error", (error) => log("warning", "db.pool_error", { error: error.message }));
  const auth = createAuth(config, pool);
  await migrate(pool, auth);
  const server = createServer(auth);
  // Nothing may hang forever: slow clients are cut off.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  server.keepAliveTimeout = 65_000;
  server.listen(config.port, config.host, () => {
    log("info", "auth.started", { host: config.host, port: config.port, base_url: config.baseURL,
      production: config.production });
  });
  const stop = (signal) => {
    log("info", "auth.stopping", { signal });
    server.close(() => pool.end().finally(() => process.exit(0)));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((error) => {
  log("error", "auth.start_failed", { error: error.message });
  process.exit(1);
});
