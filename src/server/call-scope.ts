import { ConnectError, type UnaryRequest } from "@connectrpc/connect";
import { ErrorReason } from "../errors/error-reason.js";
import { createIdempotencyError } from "../errors/idempotency-error.js";
import type { InterceptorSettings } from "./interceptor-options.js";

/**
 * The scope of a call, from the interceptor's scope function, checked: a
 * string, or a precise error and a `scope_error` event. A ConnectError the
 * function throws (UNAUTHENTICATED, say) reaches the client as it is.
 */
export async function resolveCallScope(req: UnaryRequest, settings: InterceptorSettings): Promise<string> {
  let scope: unknown;
  try {
    scope = settings.scope(req);
    if (typeof scope !== "string") {
      scope = await scope;
    }
  } catch (thrown) {
    report(req, settings, thrown);
    if (thrown instanceof ConnectError) {
      throw thrown;
    }
    throw createIdempotencyError(
      ErrorReason.SCOPE_FAILED,
      "the idempotency interceptor's scope function failed, so the request did not run",
      { cause: thrown },
    );
  }
  if (typeof scope !== "string") {
    report(req, settings, scope);
    throw createIdempotencyError(
      ErrorReason.SCOPE_INVALID,
      `the idempotency interceptor's scope function returned ${describe(scope)} instead of a string, so the request ` +
        "did not run; if it reads a value that an auth interceptor sets, put that interceptor before the idempotency interceptor",
    );
  }
  return scope;
}

function describe(value: unknown): string {
  if (value === null || value === undefined) {
    return String(value);
  }
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

function report(req: UnaryRequest, settings: InterceptorSettings, error: unknown): void {
  if (settings.onEvent === undefined || !settings.listening()) {
    return;
  }
  try {
    settings.onEvent({
      type: "scope_error",
      method: `${req.method.parent.typeName}/${req.method.name}`,
      keyHash: "",
      at: Date.now(),
      storeMs: 0,
      storeCalls: [],
      error,
    });
  } catch {
    // A failing listener must not change the call's answer.
  }
}
