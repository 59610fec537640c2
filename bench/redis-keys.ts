import { createClient } from "@redis/client";

/** Where the peer scenarios find Redis; `BENCH_REDIS_URL` overrides it. */
export const benchRedisUrl = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";

/**
 * Deletes the keys that start with `prefix`, and only those: the Redis on this
 * machine is shared, so the bench never flushes a whole database.
 */
export async function deleteRedisKeys(prefix: string): Promise<number> {
  const client = await createClient({ url: benchRedisUrl }).connect();
  try {
    let deleted = 0;
    for await (const keys of client.scanIterator({ MATCH: `${escapeGlob(prefix)}*`, COUNT: 1000 })) {
      if (keys.length > 0) {
        deleted += await client.unlink(keys);
      }
    }
    return deleted;
  } finally {
    client.destroy();
  }
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
