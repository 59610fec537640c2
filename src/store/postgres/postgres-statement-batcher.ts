/** What `createPostgresStatementBatcher` needs to serve many callers with one statement. */
export interface PostgresStatementBatcherInit<Input, Result> {
  /**
   * Names the row an input writes, as stored: one statement takes each row
   * at most once, and batches order their inputs by it.
   */
  readonly rowOf: (input: Input) => string;
  /**
   * Runs one statement for all `inputs` (distinct rows, sorted by `rowOf`)
   * and returns one result per input, in their order. The statement must be
   * atomic: when it rejects, none of its inputs took effect.
   */
  readonly run: (inputs: readonly Input[]) => Promise<readonly Result[]>;
}

/** Sends the operations of one kind that arrive in one turn of the event loop as one statement. */
export interface PostgresStatementBatcher<Input, Result> {
  /** Queues `input` for the next statement; resolves with its own result, or rejects with its batch's error. */
  submit(input: Input): Promise<Result>;
}

interface Waiting<Input, Result> {
  readonly input: Input;
  readonly row: string;
  readonly resolve: (result: Result) => void;
  readonly reject: (error: unknown) => void;
}

// SQLSTATE classes of errors that one input's values cause: data exceptions
// (a lease that overflows `bigint`), integrity violations and program limits
// (a key too long for the primary key's index). PostgreSQL aborts the whole
// statement for them, so each input of that batch is run again alone and
// only the one at fault fails.
const inputErrorClasses = new Set(["22", "23", "54"]);

// A burst larger than this goes out as several statements (of disjoint,
// sorted ranges of rows), so that no statement grows without bound against
// the statement timeout.
const maxBatchInputs = 1000;

function isInputError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && inputErrorClasses.has(code.slice(0, 2));
}

/**
 * Group commit for PostgreSQL: the inputs submitted during one turn of the
 * event loop are sent at the next `setImmediate` as one statement (one round
 * trip and one transaction), and each caller gets the result of its own
 * input. A batch does not wait for the one before it:
 * several run at once on the pool's connections.
 *
 * The statement judges every input on its own row as a single statement
 * would, so batching changes no outcome:
 *
 * - an input whose row is already in the batch waits for the next one,
 *   which is sent once this one answered: operations on one row behave as
 *   if sequential (and `ON CONFLICT DO UPDATE` may touch a row only once);
 * - inputs are sorted by row, so concurrent batches, in this process or
 *   another, lock rows in one order and never deadlock each other (a turn
 *   of more than `maxBatchInputs` is sent as several statements over
 *   disjoint ranges);
 * - when the statement fails for one input's values (`inputErrorClasses`),
 *   nothing was written, and every input of the batch runs again alone, so
 *   one bad input never fails its neighbours;
 * - any other failure (connection lost, timeout, server shutting down)
 *   rejects every caller of the batch with that error: the store fails
 *   closed for all of them, as it would for each alone.
 */
export function createPostgresStatementBatcher<Input, Result>(
  init: PostgresStatementBatcherInit<Input, Result>,
): PostgresStatementBatcher<Input, Result> {
  let queue: Waiting<Input, Result>[] = [];
  let scheduled = false;

  const schedule = () => {
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };

  const settle = async (batch: readonly Waiting<Input, Result>[]): Promise<void> => {
    try {
      const results = await init.run(batch.map((waiting) => waiting.input));
      for (const [index, waiting] of batch.entries()) {
        waiting.resolve(results[index] as Result);
      }
    } catch (error) {
      if (batch.length > 1 && isInputError(error)) {
        await Promise.all(batch.map((waiting) => settle([waiting])));
        return;
      }
      for (const waiting of batch) {
        waiting.reject(error);
      }
    }
  };

  function flush(): void {
    scheduled = false;
    const pending = queue;
    queue = [];
    const rows = new Set<string>();
    const batch: Waiting<Input, Result>[] = [];
    const later: Waiting<Input, Result>[] = [];
    for (const waiting of pending) {
      if (rows.has(waiting.row)) {
        later.push(waiting);
      } else {
        rows.add(waiting.row);
        batch.push(waiting);
      }
    }
    batch.sort((a, b) => (a.row < b.row ? -1 : a.row > b.row ? 1 : 0));
    const statements: Promise<void>[] = [];
    for (let start = 0; start < batch.length; start += maxBatchInputs) {
      statements.push(settle(batch.slice(start, start + maxBatchInputs)));
    }
    void Promise.all(statements).then(() => {
      if (later.length > 0) {
        queue = [...later, ...queue];
        schedule();
      }
    });
  }

  return {
    submit(input) {
      return new Promise<Result>((resolve, reject) => {
        queue.push({ input, row: init.rowOf(input), resolve, reject });
        schedule();
      });
    },
  };
}
