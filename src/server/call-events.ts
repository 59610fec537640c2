import type { DedupeCall } from "./dedupe-call.js";
import type { IdempotencyEvent, IdempotencyEventType, StoreOperation } from "./idempotency-event.js";

/**
 * Reports one decision of a call to the interceptor's listeners. Builds
 * nothing when nobody records it.
 */
export function emit(call: DedupeCall, type: IdempotencyEventType, details?: Partial<IdempotencyEvent>): void {
  const { onEvent, listening } = call.settings;
  if (onEvent === undefined || !listening()) {
    // Nobody records this event: skip building it and hashing the key.
    call.storeCalls.length = 0;
    return;
  }
  const storeCalls = call.storeCalls;
  call.storeCalls = [];
  call.keyHash ??= call.settings.hashKey(call.record);
  try {
    onEvent({
      ...details,
      type,
      method: call.record.method,
      keyHash: call.keyHash,
      at: Date.now(),
      storeMs: call.storeMs,
      storeCalls,
    });
  } catch {
    // A failing listener must not fail the call or skip the store writes.
  }
}

/** Runs a store operation of a call and records its duration for events. */
export async function timed<T>(call: DedupeCall, operation: StoreOperation, run: () => Promise<T>): Promise<T> {
  const started = performance.now();
  let failed = true;
  try {
    const result = await run();
    failed = false;
    return result;
  } finally {
    const ms = performance.now() - started;
    call.storeMs += ms;
    if (call.settings.listening()) {
      call.storeCalls.push({ operation, ms, failed });
    }
  }
}
