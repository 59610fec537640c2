/**
 * The message of an error, as the command line shows it to an operator. A
 * library error starts with the function it comes from
 * (`openSqliteStoreAdmin: cannot open ...`), which means nothing to someone
 * running a command, so that name is left out.
 */
export function operatorMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^(?:open|create)[A-Z][A-Za-z]*: /, "");
}
