import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { type Clock, resolveClock } from "../../time/clock.js";
import { type PendingRequestIdEntry, type PendingRequestIds, asPendingRequestIdEntry } from "../pending-request-ids.js";

/** Options of `createFilePendingRequestIds`. */
export interface FilePendingRequestIdsOptions {
  /** The clock, in epoch milliseconds. Default `Date`. */
  readonly clock?: Clock;
}

/**
 * Creates pending request IDs kept in one small JSON file, for a Node
 * process that its supervisor may restart: the restarted process sends an
 * operation that was in flight under the same request ID. The file is
 * created with its folder when missing, rewritten whole on every change
 * (write to a temporary file, then rename, so that a crash leaves the old or
 * the new file, never half of one), and pruned of expired entries then.
 *
 * Meant for one process at a time: two processes sharing the file can
 * overwrite each other's entries, which costs the protection, never
 * correctness (an ID lost here is a new ID on the next attempt).
 *
 * Import it from `connect-idempotency/client/node`; it is not part of the
 * browser-safe `connect-idempotency/client`.
 */
export function createFilePendingRequestIds(
  path: string,
  options: FilePendingRequestIdsOptions = {},
): PendingRequestIds {
  const clock = resolveClock("createFilePendingRequestIds", options, Date);
  // One change at a time: each read-modify-write sees the previous one's file.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const result = queue.then(work);
    queue = result.catch(() => undefined);
    return result;
  };
  const load = async (): Promise<Map<string, PendingRequestIdEntry>> => {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        return new Map();
      }
      throw err;
    }
    const entries = new Map<string, PendingRequestIdEntry>();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      // A file that is not ours, or damaged: start over rather than fail every call.
      return entries;
    }
    if (typeof parsed === "object" && parsed !== null) {
      const at = clock.now();
      for (const [key, value] of Object.entries(parsed)) {
        const entry = asPendingRequestIdEntry(value);
        if (entry !== undefined && entry.expiresAtMs > at) {
          entries.set(key, entry);
        }
      }
    }
    return entries;
  };
  const save = async (entries: Map<string, PendingRequestIdEntry>): Promise<void> => {
    await mkdir(dirname(path), { recursive: true });
    const temporary = `${path}.${process.pid}.tmp`;
    await writeFile(temporary, JSON.stringify(Object.fromEntries(entries)));
    await rename(temporary, path);
  };
  return {
    get: (key) => serial(async () => (await load()).get(key)?.requestId),
    set: (key, requestId, ttlMs) =>
      serial(async () => {
        const entries = await load();
        entries.set(key, { requestId, expiresAtMs: clock.now() + ttlMs });
        await save(entries);
      }),
    delete: (key, requestId) =>
      serial(async () => {
        const entries = await load();
        if (entries.get(key)?.requestId === requestId) {
          entries.delete(key);
          await save(entries);
        }
      }),
  };
}
