// Runs SQL statements through the npm `trino-client` (Basic auth) and prints
// one JSON document on stdout; driven by tests/clients/test_trino_npm.py.
//
//   node query.mjs SERVER_URL SECRET SQL [SQL ...]
//
// SERVER_URL, SECRET and the first SQL may instead come from the
// environment: TRINO_SERVER, TRINO_SECRET, TRINO_SQL. Optional environment:
// TRINO_USER (default "sluice-npm", sent as the Basic user name and as
// X-Trino-User), TRINO_CATALOG, TRINO_SCHEMA (connection defaults).
//
// All statements run on one client in order, so session changes (USE ...)
// carry over as the client applies X-Trino-Set-* headers. Output:
//   {"results": [{"sql", "columns": [{"name","type"}]|null, "rows": [...],
//                 "pages": n, "error": {...}|null}, ...]}
// "error" is the Trino error object of a failed query, or
// {"httpStatus", "wwwAuthenticate", "message"} when the HTTP request itself
// failed (e.g. 401). Exit code 0 when the document was printed, 2 on usage
// errors.

import { BasicAuth, Trino } from 'trino-client';

const args = process.argv.slice(2);
const server = args[0] ?? process.env.TRINO_SERVER;
const secret = args[1] ?? process.env.TRINO_SECRET;
const statements = args.length > 2 ? args.slice(2) : (process.env.TRINO_SQL ? [process.env.TRINO_SQL] : []);
if (!server || secret === undefined || statements.length === 0) {
  process.stderr.write('usage: node query.mjs SERVER_URL SECRET SQL [SQL ...]\n');
  process.exit(2);
}
const user = process.env.TRINO_USER || 'sluice-npm';

const options = { server, auth: new BasicAuth(user, secret), source: 'sluice-npm-tests' };
if (process.env.TRINO_CATALOG) options.catalog = process.env.TRINO_CATALOG;
if (process.env.TRINO_SCHEMA) options.schema = process.env.TRINO_SCHEMA;
const trino = Trino.create(options);

async function run(sql) {
  const out = { sql, columns: null, rows: [], pages: 0, error: null };
  try {
    const iter = await trino.query(sql);
    // The client yields the pages fetched from nextUri (not the POST answer).
    for await (const page of iter) {
      out.pages += 1;
      if (page.columns) out.columns = page.columns.map((c) => ({ name: c.name, type: c.type }));
      if (page.data) out.rows.push(...page.data);
      if (page.error) out.error = page.error;
    }
  } catch (e) {
    const response = e && e.response;
    out.error = {
      httpStatus: response ? response.status : null,
      wwwAuthenticate: response ? (response.headers['www-authenticate'] ?? null) : null,
      message: String((e && e.message) || e),
    };
  }
  return out;
}

const results = [];
for (const sql of statements) {
  results.push(await run(sql));
}
process.stdout.write(JSON.stringify({ results }) + '\n');
