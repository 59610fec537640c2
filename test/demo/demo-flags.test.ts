import { describe, expect, it } from "vitest";
import { type DemoOutput, defaultDataDir, defaultPostgresUrl, parseDemoArgs } from "../../demo/demo-options.js";
import { runDemoProcess } from "./demo-process.js";

function capture(): DemoOutput & { out: string; err: string } {
  const captured = {
    out: "",
    err: "",
    writeOut: (text: string) => {
      captured.out += text;
    },
    writeErr: (text: string) => {
      captured.err += text;
    },
  };
  return captured;
}

describe("demo flags", () => {
  it("exits 2 with one error line and the usage on an unknown flag", async () => {
    const exit = await runDemoProcess(["--bogus"]);
    expect(exit.status).toBe(2);
    expect(exit.stdout).toBe("");
    expect(exit.stderr.split("\n")).toEqual([
      "error: unknown option '--bogus'",
      "Usage: npm start -- [options]",
      "Run 'npm start -- --help' to see all options.",
      "",
    ]);
  });

  it("exits 2 on a bad value without starting anything", async () => {
    const exit = await runDemoProcess(["--payments", "0"]);
    expect(exit.status).toBe(2);
    expect(exit.stderr.split("\n")[0]).toBe(
      "error: option '-n, --payments <count>' argument '0' is invalid. must be a positive integer.",
    );
    expect(exit.stderr).toContain("Usage: npm start -- [options]");
  });

  it("prints every flag with --help and exits 0", async () => {
    const exit = await runDemoProcess(["--help"]);
    expect(exit.status).toBe(0);
    for (const flag of [
      "--payments",
      "--concurrency",
      "--drop-rate",
      "--reset-rate",
      "--seed",
      "--data-dir",
      "--serve",
      "--port",
      "--no-idempotency",
      "--no-crash",
      "--bank-timeout-rate",
      "--deadline-rate",
      "--no-stall",
      "--store",
      "--postgres",
      "--keep",
      "--skew",
    ]) {
      expect(exit.stdout).toContain(flag);
    }
    expect(exit.stderr).toBe("");
  });

  it.each([
    [
      ["--concurrency", "-3"],
      "error: option '-c, --concurrency <count>' argument '-3' is invalid. must be a positive integer.",
    ],
    [
      ["--drop-rate", "1"],
      "error: option '--drop-rate <share>' argument '1' is invalid. must be a number from 0 up to (not including) 1.",
    ],
    [
      ["--reset-rate", "abc"],
      "error: option '--reset-rate <share>' argument 'abc' is invalid. must be a number from 0 up to (not including) 1.",
    ],
    [["--seed", "1.5"], "error: option '--seed <integer>' argument '1.5' is invalid. must be a non-negative integer."],
    [["--port", "70000"], "error: option '--port <port>' argument '70000' is invalid. must be a port from 0 to 65535."],
    [["--payments"], "error: option '-n, --payments <count>' argument missing"],
    [["surplus"], "error: too many arguments. Expected 0 arguments but got 1."],
    [["--drop-rate", "0.6", "--reset-rate", "0.4"], "error: --drop-rate plus --reset-rate must stay below 1, got 1"],
    [
      ["--bank-timeout-rate", "1.5"],
      "error: option '--bank-timeout-rate <share>' argument '1.5' is invalid. must be a number from 0 up to (not including) 1.",
    ],
    [
      ["--deadline-rate", "-0.1"],
      "error: option '--deadline-rate <share>' argument '-0.1' is invalid. must be a number from 0 up to (not including) 1.",
    ],
    [
      ["--store", "mysql"],
      "error: option '--store <kind>' argument 'mysql' is invalid. Allowed choices are sqlite, postgres.",
    ],
    [
      ["--store", "postgres", "--postgres", "mysql://db/x"],
      "error: option '--postgres <url>' argument 'mysql://db/x' is invalid. must be a URL such as postgres://user@host:5432/database.",
    ],
    [
      ["--store", "postgres", "--postgres", "not a url"],
      "error: option '--postgres <url>' argument 'not a url' is invalid. must be a URL such as postgres://user@host:5432/database.",
    ],
    [["--postgres", "postgres://127.0.0.1/test"], "error: --postgres needs --store postgres"],
    [["--keep"], "error: --keep needs --store postgres"],
    [
      ["--store", "postgres", "--skew", "0"],
      "error: option '--skew <seconds>' argument '0' is invalid. must be a whole number of seconds from -86400 to 86400, not 0.",
    ],
    [
      ["--store", "postgres", "--skew", "1.5"],
      "error: option '--skew <seconds>' argument '1.5' is invalid. must be a whole number of seconds from -86400 to 86400, not 0.",
    ],
    [
      ["--store", "postgres", "--skew", "90000"],
      "error: option '--skew <seconds>' argument '90000' is invalid. must be a whole number of seconds from -86400 to 86400, not 0.",
    ],
    [
      ["--skew", "30"],
      "error: --skew needs --store postgres: SQLite times leases by each process's own clock, which must be the machine's one clock, so a skewed process there shows a misconfiguration, not a guarantee",
    ],
    [["--store", "postgres", "--serve"], "error: --store postgres runs the load; --serve uses the SQLite files"],
  ])("refuses %j with status 2", (argv, message) => {
    const output = capture();
    expect(parseDemoArgs(argv, output)).toEqual({ kind: "exit", status: 2 });
    expect(output.err.split("\n")).toEqual([
      message,
      "Usage: npm start -- [options]",
      "Run 'npm start -- --help' to see all options.",
      "",
    ]);
    expect(output.out).toBe("");
  });

  it("reads every flag", () => {
    const output = capture();
    const parsed = parseDemoArgs(
      [
        "-n",
        "10",
        "-c",
        "3",
        "--drop-rate",
        "0.2",
        "--reset-rate",
        "0",
        "--seed",
        "9",
        "--data-dir",
        "/tmp/x",
        "--serve",
        "--port",
        "0",
        "--no-idempotency",
        "--no-crash",
      ],
      output,
    );
    expect(parsed).toEqual({
      kind: "run",
      options: {
        payments: 10,
        concurrency: 3,
        dropRate: 0.2,
        resetRate: 0,
        seed: 9,
        dataDir: "/tmp/x",
        serve: true,
        web: false,
        port: 0,
        idempotency: false,
        crash: false,
        bankTimeoutRate: 0.03,
        deadlineRate: 0.03,
        stall: true,
        store: "sqlite",
        postgres: defaultPostgresUrl,
        keep: false,
        skewSeconds: 0,
        libfaketime: undefined,
      },
    });
  });

  it("reads the PostgreSQL flags, and finds libfaketime for --skew", () => {
    const parsed = parseDemoArgs(
      [
        "--store",
        "postgres",
        "--postgres",
        "postgres://app@db:5432/shop",
        "--keep",
        "--skew",
        "-30",
        "--bank-timeout-rate",
        "0.1",
        "--deadline-rate",
        "0",
        "--no-stall",
      ],
      capture(),
    );
    expect(parsed.kind === "run" && parsed.options).toMatchObject({
      store: "postgres",
      postgres: "postgres://app@db:5432/shop",
      keep: true,
      skewSeconds: -30,
      libfaketime: expect.stringContaining("libfaketime.so.1"),
      bankTimeoutRate: 0.1,
      deadlineRate: 0,
      stall: false,
    });
  });

  it("refuses --skew with one clear line and status 2 when libfaketime is not installed", async () => {
    const exit = await runDemoProcess(["--store", "postgres", "--skew", "30"], {
      LIBFAKETIME: "/nonexistent/libfaketime.so.1",
    });
    expect(exit.status).toBe(2);
    expect(exit.stdout).toBe("");
    expect(exit.stderr.split("\n")).toEqual([
      "error: --skew needs libfaketime, which is not installed (looked for /nonexistent/libfaketime.so.1); install it (apt-get install faketime) or set LIBFAKETIME to its libfaketime.so.1",
      "Usage: npm start -- [options]",
      "Run 'npm start -- --help' to see all options.",
      "",
    ]);
  });

  it("reads --web, which cannot go with --serve", () => {
    const parsed = parseDemoArgs(["--web", "--port", "0"], capture());
    expect(parsed.kind === "run" && [parsed.options.web, parsed.options.serve, parsed.options.port]).toEqual([
      true,
      false,
      0,
    ]);
    expect(parseDemoArgs(["--web", "--serve"], capture())).toEqual({ kind: "exit", status: 2 });
  });

  it("defaults to 2,000 payments, concurrency 32, a crash and a random seed", () => {
    const parsed = parseDemoArgs([], capture());
    expect(parsed.kind).toBe("run");
    if (parsed.kind === "run") {
      expect(parsed.options).toMatchObject({
        payments: 2000,
        concurrency: 32,
        dataDir: defaultDataDir,
        serve: false,
        port: 8080,
        idempotency: true,
        crash: true,
        stall: true,
        store: "sqlite",
      });
      expect(Number.isSafeInteger(parsed.options.seed)).toBe(true);
    }
  });
});
