// Lectern's identity server: Better Auth (email + password, sessions, EdDSA JWTs + JWKS) on Node.
import http from "node:http";

import { betterAuth } from "better-auth";
import { getMigrations } from "better-auth/db/migration";
import { toNodeHandler } from "better-auth/node";
import { bearer, jwt } from "better-auth/plugins";
import pg from "pg";

const SCHEMA = "auth";
const BASE_PATH = "/api/auth";
const MAX_BODY_BYTES = 64 * 1024;
const WEAK_SECRETS = new Set(["", "changeme", "change-me", "secret", "admin", "password", "dev",
  "test", "better-auth-secret-123456789"]);
// Any fixed key works: only the auth server takes this lock, around its own migrations.
const MIGRATION_LOCK = 7_151_203_517;

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
  return {
    production,
    secret,
    baseURL,
    trustedOrigins: [...new Set([baseURL, ...origins])],
    databaseUrl: env.DATABASE_URL,
    host: env.AUTH_HOST || "127.0.0.1",
    port: Number.parseInt(env.AUTH_PORT ?? "8105", 10),
    jwtTtl,
  };
}

/** A pg pool on Lectern's database, pinned to the `auth` schema, with bounded waits. */
function createPool(config) {
  return new pg.Pool({
    // pg understands both TCP URLs and the embedded server's `postgresql://u:@/db?host=/socketdir`.
    connectionString: config.databaseUrl,
    options: `-c search_path=${SCHEMA} -c statement_timeout=10000`,
    max: 10,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30000,
    application_name: "lectern-auth",
  });
}

/** Creates the schema and Better Auth's tables; an advisory lock keeps two replicas apart. */
async function migrate(pool, auth) {
  const client = await pool.connect();
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${SCHEMA}"`);
    await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
    try {
      const { toBeCreated, toBeAdded, runMigrations } = await getMigrations(auth.options);
      if (toBeCreated.length || toBeAdded.length) {
        await runMigrations();
        log("info", "auth.migrated", {
          created: toBeCreated.map((t) => t.table), altered: toBeAdded.map((t) => t.table),
        });
      }
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]);
    }
  } finally {
    client.release();
  }
}

function createAuth(config, pool) {
  return betterAuth({
    appName: "Lectern",
    baseURL: config.baseURL,
    basePath: BASE_PATH,
    secret: config.secret,
    database: pool,
    trustedOrigins: config.trustedOrigins,
    emailAndPassword: { enabled: true, minPasswordLength: 8, maxPasswordLength: 128 },
    session: { expiresIn: 60 * 60 * 24 * 7, updateAge: 60 * 60 * 24 },
    // Shared across replicas through Postgres; the gateway limits /api/auth/* per address too.
    rateLimit: { enabled: config.production, storage: "database" },
    advanced: { ipAddress: { ipAddressHeaders: ["x-forwarded-for"] } },
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

function createServer(auth) {
  const handle = toNodeHandler(auth);
  return http.createServer((req, res) => {
    const started = process.hrtime.bigint();
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
    if (!(req.url ?? "").startsWith(`${BASE_PATH}/`)) {
      sendJson(res, 404, { error: { code: "not_found", message: "not found" } });
      return;
    }
    if (Number.parseInt(req.headers["content-length"] ?? "0", 10) > MAX_BODY_BYTES) {
      sendJson(res, 413, { error: { code: "payload_too_large", message: "request body too large" } });
      return;
    }
    handle(req, res).catch((error) => {
      log("error", "http.unhandled", { error: error?.name ?? "Error" });
      if (!res.headersSent) sendJson(res, 500, { error: { code: "internal_error", message: "internal error" } });
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
