// Environment variables of the server processes the tests start
// (payment-server-process.ts, fault-payment-server.ts, crash-payment-server.ts).

/** The value of a required variable; throws naming it when it is unset or empty. */
export function requiredEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new Error(`${name} is required`);
  }
  return value;
}

/** The number a variable holds, or undefined when it is unset or empty. */
export function optionalNumberEnv(name: string): number | undefined {
  const value = process.env[name];
  return value === undefined || value === "" ? undefined : Number(value);
}
