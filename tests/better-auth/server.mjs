// Better Auth against a todo-store database, one operation per run, for
// tests/better_auth.rs:
//
//   node server.mjs <operation> '<json input>'
//
// prints one line of JSON. Operations:
//
//   check                         Better Auth's migration plan and schema check:
//                                 { toCreate, toAdd, indexes, problems, warnings, schemaCheck }
//   migrate                       runs Better Auth's migrator, then reports as check
//   sign-up  {email,password,name}  { status, code, cookie: {name, value}, user: {id, email} }
//   sign-in  {email,password}       the same
//   sign-out {cookie}               { status }
//   get-session {cookie}            { status, session: {id, userId, expiresAt}, user: {id, email} }
//   sign {value}                    { value }: the cookie value better-call signs `value` into,
//                                   as Set-Cookie carries it (the code Better Auth signs with)
//
// Environment: DATABASE_URL (a libpq URL; `?host=/socket/dir` works, node-postgres
// reads it the same way), BETTER_AUTH_SECRET, and BETTER_AUTH_URL (default
// http://localhost:3000; an https URL makes the cookie __Secure-better-auth...).
//
// Passwords and tokens are never printed, except the cookie the caller asked for.
import { betterAuth } from "better-auth";
import { getMigrations } from "better-auth/db/migration";
import { serializeSignedCookie } from "better-call";
import pg from "pg";

import { todoStoreSchema } from "./todo-store-schema.mjs";

const [operation, rawInput] = process.argv.slice(2);
const input = rawInput ? JSON.parse(rawInput) : {};

for (const name of ["DATABASE_URL", "BETTER_AUTH_SECRET"]) {
  if (!process.env[name]) fail(`${name} is not set`);
}

// Better Auth's warnings (a column of another type, a nullable column it requires)
// are part of what `check` reports: collected, not printed.
const warnings = [];
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 2 });
const options = {
  ...todoStoreSchema,
  database: pool,
  secret: process.env.BETTER_AUTH_SECRET,
  baseURL: process.env.BETTER_AUTH_URL ?? "http://localhost:3000",
  emailAndPassword: { enabled: true },
  telemetry: { enabled: false },
  logger: {
    level: "warn",
    log: (level, message) => {
      if (level === "warn" || level === "error") warnings.push(`${level}: ${message}`);
    },
  },
};

try {
  const auth = betterAuth(options);
  const output = await run(auth, operation, input);
  process.stdout.write(`${JSON.stringify(output)}\n`);
} catch (error) {
  fail(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
} finally {
  await pool.end();
}

async function run(auth, operation, input) {
  switch (operation) {
    case "check":
      return schemaReport(auth);
    case "migrate": {
      const { runMigrations } = await getMigrations(options);
      await runMigrations();
      return schemaReport(auth);
    }
    case "sign-up":
      return signedIn(
        await auth.api.signUpEmail({
          body: { email: input.email, password: input.password, name: input.name },
          asResponse: true,
        }),
      );
    case "sign-in":
      return signedIn(
        await auth.api.signInEmail({
          body: { email: input.email, password: input.password },
          asResponse: true,
        }),
      );
    case "sign-out": {
      const response = await auth.api.signOut({
        headers: cookieHeaders(input.cookie),
        asResponse: true,
      });
      return { status: response.status };
    }
    case "get-session": {
      const response = await auth.api.getSession({
        headers: cookieHeaders(input.cookie),
        asResponse: true,
      });
      const body = await response.json();
      return {
        status: response.status,
        session: body
          ? { id: body.session.id, userId: body.session.userId, expiresAt: body.session.expiresAt }
          : null,
        user: body ? { id: body.user.id, email: body.user.email } : null,
      };
    }
    case "sign": {
      const header = await serializeSignedCookie("signed", input.value, options.secret, {});
      return { value: header.slice("signed=".length).split(";")[0] };
    }
    default:
      fail(`unknown operation ${JSON.stringify(operation)}`);
  }
}

// What Better Auth would change in this database, and what its schema check finds.
async function schemaReport(auth) {
  const plan = await getMigrations(options, { throwOnUnsafe: false });
  const context = await auth.$context;
  let schemaCheck = [];
  try {
    await context.explicitSchemaCheck?.();
  } catch (error) {
    schemaCheck = error.findings ?? [String(error)];
  }
  return {
    toCreate: plan.toBeCreated.map((table) => table.table),
    toAdd: plan.toBeAdded.map((table) => ({ table: table.table, fields: Object.keys(table.fields) })),
    indexes: plan.toBeAddedIndexes.map((index) => index.name),
    problems: [...plan.schemaProblems, ...plan.unsafeChanges],
    warnings,
    schemaCheck,
  };
}

// The status, error code, session cookie and user of a sign-up or sign-in.
async function signedIn(response) {
  const body = await response.json().catch(() => null);
  const ok = response.status === 200;
  return {
    status: response.status,
    code: ok ? null : (body?.code ?? null),
    cookie: ok ? sessionCookie(response.headers) : null,
    user: ok && body?.user ? { id: body.user.id, email: body.user.email } : null,
  };
}

// The session cookie of a response, its value exactly as Set-Cookie carries it.
function sessionCookie(headers) {
  for (const line of headers.getSetCookie()) {
    const [pair] = line.split(";");
    const eq = pair.indexOf("=");
    const name = pair.slice(0, eq);
    if (name.endsWith("better-auth.session_token")) return { name, value: pair.slice(eq + 1) };
  }
  return null;
}

function cookieHeaders(cookie) {
  return new Headers({ cookie: `${cookie.name}=${cookie.value}` });
}

function fail(message) {
  process.stderr.write(`server.mjs: ${message}\n`);
  process.exit(1);
}
