import type { DescMethod } from "@bufbuild/protobuf";
import type { ConnectError, ContextValues } from "@connectrpc/connect";
import { fillRequestId, readRequestId } from "./fill-request-id.js";
import { pendingKeyKey } from "./pending-key.js";
import { type PendingRequestIds, defaultPendingTtlMs } from "./pending-request-ids.js";
import { requestContentKey } from "./request-content-key.js";
import { requestIntentKey } from "./request-intent.js";
import { isRetryableError } from "./retryable-error.js";

/** Where request IDs come from, resolved once per client or interceptor. */
export interface RequestIdSources {
  /** Makes a new request ID. */
  readonly generate: () => string;
  /** Pending request IDs; undefined keeps none. */
  readonly pending: PendingRequestIds | undefined;
  /** How long a pending entry lasts, in milliseconds. */
  readonly pendingTtlMs: number;
  /**
   * Runs `work` after every earlier one for the same key has finished, so
   * that two calls of one operation at once (a double click) cannot both
   * find no entry and choose two IDs.
   */
  readonly serially: <T>(key: string, work: () => Promise<T>) => Promise<T>;
}

/** Options that choose the request ID sources, shared by clients and interceptors. */
export interface RequestIdSourceOptions {
  /** Makes a new request ID. Default `randomRequestId` (UUIDv4). */
  readonly generateRequestId?: () => string;
  /**
   * Keeps the request ID of each operation until it has a definite answer,
   * so that the same operation sent again (after a reload, a restart, or a
   * second click) carries the same ID. None by default. See
   * `PendingRequestIds`.
   */
  readonly pendingRequestIds?: PendingRequestIds;
  /** How long a pending request ID is reused, in milliseconds. Default `defaultPendingTtlMs` (1 h). */
  readonly pendingTtlMs?: number;
}

/** The request ID chosen for one call, and what to do once it is answered. */
export interface AssignedRequestId<T> {
  /** The request to send: the caller's, or a copy with the request ID filled in. */
  readonly request: T;
  /** The request ID the call carries; undefined when it carries none. */
  readonly requestId: string | undefined;
  /**
   * Clears the pending entry when the outcome is definite: a success
   * (`error` undefined) or an error no retry can change. An answer that may
   * still change (the network failed, the caller gave up) keeps it.
   */
  settle(error: ConnectError | undefined): Promise<void>;
}

/** Resolves request ID options into sources. */
export function resolveRequestIdSources(options: RequestIdSourceOptions, generate: () => string): RequestIdSources {
  const pendingTtlMs = options.pendingTtlMs ?? defaultPendingTtlMs;
  if (!(pendingTtlMs > 0)) {
    throw new RangeError("connect-idempotency client options: pendingTtlMs must be > 0");
  }
  const queues = new Map<string, Promise<unknown>>();
  const serially = <T>(key: string, work: () => Promise<T>): Promise<T> => {
    const result = (queues.get(key) ?? Promise.resolve()).then(work);
    const done = result.catch(() => undefined);
    queues.set(key, done);
    // The last one out removes the queue, so that keys do not pile up.
    void done.then(() => {
      if (queues.get(key) === done) {
        queues.delete(key);
      }
    });
    return result;
  };
  return {
    generate: options.generateRequestId ?? generate,
    pending: options.pendingRequestIds,
    pendingTtlMs,
    serially,
  };
}

/**
 * Chooses the request ID of one call, in this order: the caller's own ID in
 * the request (always kept); the ID of the call's intent (`requestIntentKey`,
 * such as one TanStack `mutate()`); the pending ID of the same operation; a
 * new one from `generate` when `autoFill` allows it. The chosen ID is
 * recorded in the intent and, before the request is sent, as pending.
 */
export async function assignRequestId<T extends object>(
  method: DescMethod,
  request: T,
  field: string,
  autoFill: boolean,
  contextValues: ContextValues | undefined,
  sources: RequestIdSources,
): Promise<AssignedRequestId<T>> {
  const intent = contextValues?.get(requestIntentKey);
  const own = readRequestId(request, field);
  if (own !== undefined || !autoFill) {
    if (intent !== undefined && own !== undefined) {
      intent.requestId = own;
    }
    return { request, requestId: own, settle: () => Promise.resolve() };
  }
  const { pending } = sources;
  if (pending === undefined) {
    const filled = fillRequestId(method.input, request, field, () => intent?.requestId ?? sources.generate());
    if (intent !== undefined) {
      intent.requestId = filled.requestId;
    }
    return { ...filled, settle: () => Promise.resolve() };
  }
  const callerKey = contextValues?.get(pendingKeyKey);
  const key =
    callerKey === undefined
      ? requestContentKey(method, request, field)
      : `${method.parent.typeName}/${method.name}@${callerKey}`;
  // Recorded before the first byte leaves: a reload from here on finds it.
  // A store that fails costs the protection, not the call.
  const requestId = await sources.serially(key, async () => {
    const chosen = intent?.requestId ?? (await readPending(pending, key)) ?? sources.generate();
    await guarded(() => pending.set(key, chosen, sources.pendingTtlMs));
    return chosen;
  });
  if (intent !== undefined) {
    intent.requestId = requestId;
  }
  return {
    request: fillRequestId(method.input, request, field, () => requestId).request,
    requestId,
    async settle(error) {
      if (error === undefined || !isRetryableError(error)) {
        await guarded(() => pending.delete(key, requestId));
      }
    },
  };
}

function readPending(pending: PendingRequestIds, key: string): Promise<string | undefined> {
  return guarded(() => pending.get(key));
}

// A backend that fails, even by throwing at once (Safari's storage quota in
// a private window), leaves the call to go on without it.
async function guarded<T>(operation: () => Promise<T>): Promise<T | undefined> {
  try {
    return await operation();
  } catch {
    return undefined;
  }
}
