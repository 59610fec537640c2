import { type ContextKey, type ContextValues, createContextKey, createContextValues } from "@connectrpc/connect";

const retriedKey = createContextKey(false, { description: "connect-idempotency: call retried by a generated client" });

/**
 * Context values that tell a retry interceptor further down that the call is
 * already retried by a generated client, so that attempts do not multiply.
 * The caller's values are read through, never modified.
 */
export function markRetriedCall(values: ContextValues | undefined): ContextValues {
  const inner = values ?? createContextValues();
  const overlay: ContextValues = {
    get<T>(key: ContextKey<T>): T {
      return key.id === retriedKey.id ? (true as T) : inner.get(key);
    },
    set(key, value) {
      inner.set(key, value);
      return this;
    },
    delete(key) {
      inner.delete(key);
      return this;
    },
  };
  return overlay;
}

/** Whether a generated client already retries this call. */
export function isRetriedCall(values: ContextValues): boolean {
  return values.get(retriedKey);
}
