import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { GeneratedFile, ImportSymbol } from "@bufbuild/protoplugin";
import { type ClientMethodPlan, planFromPolicy } from "../client/client-method-plan.js";
import type { IdempotencyExtensions } from "../policy/idempotency-extensions.js";
import { resolveMethodPolicy } from "../policy/method-policy.js";
import { findRequestIdField } from "../policy/request-id-field.js";

/** The runtime symbols a generated client file imports. */
export interface ClientRuntimeSymbols {
  readonly createIdempotentClient: ImportSymbol;
  readonly createIdempotentTransport: ImportSymbol;
  readonly IdempotentClientOptions: ImportSymbol;
  readonly Client: ImportSymbol;
  readonly Transport: ImportSymbol;
}

/**
 * Prints `create<Service>Client(transport, options?)` for one service: a
 * Connect client built by `createIdempotentClient` with the static plan of
 * each method, so that the call path knows the request ID field without
 * reading descriptors. Calls `warn` for every request ID the client cannot
 * fill in.
 */
export function printServiceClient(
  f: GeneratedFile,
  service: DescService,
  ext: IdempotencyExtensions,
  runtime: ClientRuntimeSymbols,
  warn: (element: string, message: string) => void,
): void {
  const plans = service.methods.map((method) => {
    const plan = planFromPolicy(resolveMethodPolicy(method, ext));
    reportUnfilled(method, plan, ext, (message) => warn(`${service.typeName}.${method.name}`, message));
    return { method, plan };
  });
  const doc = [
    `Creates a client for ${service.typeName} that fills in request IDs and`,
    "retries the calls that are safe to retry.",
    "",
    ...plans.map(({ method, plan }) => `- ${method.name}: ${describePlan(method, plan)}`),
    "",
    ...usageExample(service, plans),
    `@generated from service ${service.typeName}`,
  ];
  f.print(f.jsDoc(doc.join("\n")));
  f.print(f.export("function", `create${service.name}Client`), "(");
  f.print("  transport: ", runtime.Transport, ",");
  f.print("  options?: ", runtime.IdempotentClientOptions, ",");
  f.print("): ", runtime.Client, "<typeof ", f.importSchema(service), "> {");
  f.print("  return ", runtime.createIdempotentClient, "(");
  f.print("    ", f.importSchema(service), ",");
  f.print("    transport,");
  printPlans(f, plans);
  f.print("    options,");
  f.print("  );");
  f.print("}");
  f.print();
  const transportDoc = [
    `Creates a transport that treats the calls of ${service.typeName} as`,
    `\`create${service.name}Client\` does, for code that takes a transport rather`,
    "than a client, such as connect-query's `useMutation`. Calls of other",
    "services pass through.",
    "",
    `@generated from service ${service.typeName}`,
  ];
  f.print(f.jsDoc(transportDoc.join("\n")));
  f.print(f.export("function", `create${service.name}Transport`), "(");
  f.print("  transport: ", runtime.Transport, ",");
  f.print("  options?: ", runtime.IdempotentClientOptions, ",");
  f.print("): ", runtime.Transport, " {");
  f.print("  return ", runtime.createIdempotentTransport, "(");
  f.print("    transport,");
  printPlans(f, plans);
  f.print("    options,");
  f.print("    ", f.importSchema(service), ",");
  f.print("  );");
  f.print("}");
  f.print();
}

/**
 * An example call of the method a user most likely calls first: the first
 * unary one whose request ID the client fills in, else the first unary one.
 * test/docs/jsdoc-examples.test.ts compiles the one in the demo's file.
 */
function usageExample(
  service: DescService,
  plans: readonly { method: DescMethod; plan: ClientMethodPlan | undefined }[],
): string[] {
  const unary = plans.filter(({ method }) => method.methodKind === "unary");
  const first = unary.find(({ plan }) => plan?.autoFill === true) ?? unary[0];
  if (first === undefined) {
    return [];
  }
  const file = `${service.file.name.split("/").pop()}_idempotency.js`;
  const comment =
    first.plan?.autoFill === true
      ? `// ${first.plan.requestIdField} is filled in once, and every retry sends the same one.`
      : "// Called as the plan above says.";
  return [
    "```ts",
    'import { createConnectTransport } from "@connectrpc/connect-node";',
    `import { create${service.name}Client } from "./${file}";`,
    "",
    `const client = create${service.name}Client(`,
    '  createConnectTransport({ baseUrl: "http://localhost:8080", httpVersion: "2" }),',
    ");",
    comment,
    `console.log(await client.${first.method.localName}({}));`,
    "```",
    "",
  ];
}

/** Prints the plans object that both the client and the transport factory take. */
function printPlans(
  f: GeneratedFile,
  plans: readonly { method: DescMethod; plan: ClientMethodPlan | undefined }[],
): void {
  f.print("    {");
  for (const { method, plan } of plans) {
    if (plan !== undefined) {
      f.print("      ", method.localName, ": ", printPlan(plan), ",");
    }
  }
  f.print("    },");
}

function printPlan(plan: ClientMethodPlan): string {
  const parts: string[] = [];
  if (plan.requestIdField !== undefined) {
    parts.push(`requestIdField: ${JSON.stringify(plan.requestIdField)}`, `autoFill: ${String(plan.autoFill === true)}`);
  }
  if (plan.safeToRetry === true) {
    parts.push("safeToRetry: true");
  }
  if (plan.keyFields !== undefined) {
    parts.push(`keyFields: [${plan.keyFields.map((k) => JSON.stringify(k)).join(", ")}]`);
  }
  return `{ ${parts.join(", ")} }`;
}

function describePlan(method: DescMethod, plan: ClientMethodPlan | undefined): string {
  if (method.methodKind !== "unary") {
    return "streaming; called as it is, never retried.";
  }
  if (plan?.requestIdField !== undefined) {
    const field = `\`${plan.requestIdField}\``;
    return plan.autoFill === true
      ? `an empty ${field} is filled with a new UUIDv4; retried with the same ID.`
      : `${field} is REQUIRED and never filled in: pass your own; retried when set.`;
  }
  if (plan?.keyFields !== undefined) {
    return `deduplicated by its fields ${plan.keyFields.map((k) => `\`${k}\``).join(", ")}; no request ID to fill; retried as it is.`;
  }
  return plan?.safeToRetry === true
    ? "safe to retry (no side effects, or idempotent); retried."
    : "no request ID; called as it is, never retried.";
}

// AIP-4235: a request ID the client must not or cannot fill is skipped, and
// the generator says so.
function reportUnfilled(
  method: DescMethod,
  plan: ClientMethodPlan | undefined,
  ext: IdempotencyExtensions,
  warn: (message: string) => void,
): void {
  const lookup = findRequestIdField(method.input, ext);
  if (lookup.kind === "invalid") {
    for (const problem of lookup.problems) {
      warn(`${problem.message}; the client does not fill it in`);
    }
  } else if (lookup.kind === "found" && method.methodKind !== "unary") {
    warn(
      `${method.methodKind.replace("_", "-")} method: request ID field ${lookup.field.name} is not filled in and calls are not retried`,
    );
  } else if (lookup.kind === "found" && plan?.autoFill !== true) {
    warn(
      `request ID field ${lookup.field.name} is REQUIRED: the client does not fill it in (AIP-4235); callers pass their own`,
    );
  }
}
