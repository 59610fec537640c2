// PostgreSQL silently truncates longer identifiers, so two long table names
// could end up naming the same table.
const maxIdentifierBytes = 63;

/**
 * Quotes a schema, table or column name as a PostgreSQL identifier, so that
 * any name (spaces, quotes, capitals, non-ASCII) is taken literally and can
 * never inject SQL. Rejects names PostgreSQL would truncate or cannot store;
 * `api`, the function whose option named it, starts the error message.
 */
export function quoteIdentifier(name: string, api = "createPostgresStore"): string {
  if (name.length === 0) {
    throw new Error(`${api}: a PostgreSQL identifier must not be empty`);
  }
  if (name.includes("\0")) {
    throw new Error(`${api}: a PostgreSQL identifier must not contain NUL characters`);
  }
  if (Buffer.byteLength(name, "utf8") > maxIdentifierBytes) {
    throw new Error(`${api}: the PostgreSQL identifier "${name}" is longer than ${maxIdentifierBytes} bytes`);
  }
  return `"${name.replaceAll('"', '""')}"`;
}
