import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testConnectionString } from "../support/postgres-database.js";
import { reportFigure, runDemoProcess } from "./demo-process.js";

// `npm start -- --store postgres` against the test database: the same load,
// faults and verdict as on SQLite, in a schema of the run's own.
describe("npm start -- --store postgres", () => {
  let admin: pg.Pool;
  const kept: string[] = [];
  beforeAll(() => {
    admin = new pg.Pool({ connectionString: testConnectionString, max: 2 });
    admin.on("error", () => {});
  });
  afterAll(async () => {
    for (const schema of kept) {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    }
    await admin.end();
  });
  const schemaOf = (stderr: string): string => {
    const match = /PostgreSQL schema (demo_[0-9a-f]{8}) (kept|dropped)/.exec(stderr);
    if (match === null) {
      throw new Error(`no schema named in:\n${stderr}`);
    }
    return match[1]!;
  };
  const schemaExists = async (schema: string) =>
    (await admin.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [schema])).rowCount === 1;

  it("keeps every payment exactly once with server 2's clock 30 s ahead, and keeps the schema with --keep", async () => {
    const exit = await runDemoProcess([
      "-n",
      "200",
      "-c",
      "16",
      "--seed",
      "7",
      "--store",
      "postgres",
      "--postgres",
      testConnectionString,
      "--skew",
      "30",
      "--keep",
    ]);
    const schema = schemaOf(exit.stderr);
    kept.push(schema);
    expect(exit.status, `${exit.stdout}\n${exit.stderr}`).toBe(0);
    expect(exit.stdout).toContain(`PostgreSQL (schema ${schema}), server 2's clock 30 s ahead, 2 server processes`);
    expect(reportFigure(exit.stdout, "duplicates")).toBe(0);
    expect(reportFigure(exit.stdout, "lost")).toBe(0);
    for (const label of ["bank timeouts", "client deadlines", "server SIGKILLs", "store stalls"]) {
      expect(reportFigure(exit.stdout, label), label).toBeGreaterThan(0);
    }
    // libfaketime really moved server 2's wall clock.
    const offset = /Server 2's wall clock is (-?[\d.]+) s off/.exec(exit.stderr);
    expect(Number(offset?.[1])).toBeGreaterThan(25);
    expect(exit.stderr).toContain(`PostgreSQL schema ${schema} kept (--keep)`);

    // Straight from the kept tables, not from the report.
    const perRequest = await admin.query<{ rows: string; charges: string }>(
      `SELECT count(DISTINCT p.payment_id) AS rows, count(DISTINCT c.charge_id) AS charges
         FROM ${schema}.payments p LEFT JOIN ${schema}.charges c ON c.reference = p.request_id
        GROUP BY p.metadata`,
    );
    expect(perRequest.rows).toHaveLength(200);
    expect(perRequest.rows.every((row) => row.rows === "1" && row.charges === "1")).toBe(true);
    expect(Number((await admin.query(`SELECT count(*) AS n FROM ${schema}.charges`)).rows[0].n)).toBe(200);
  }, 120_000);

  it("drops its schema at the end without --keep", async () => {
    const exit = await runDemoProcess(["-n", "40", "--seed", "3", "--no-crash", "--no-stall", "--store", "postgres"]);
    expect(exit.status, `${exit.stdout}\n${exit.stderr}`).toBe(0);
    const schema = schemaOf(exit.stderr);
    expect(exit.stderr).toContain(`PostgreSQL schema ${schema} dropped.`);
    expect(await schemaExists(schema)).toBe(false);
  }, 120_000);
});
